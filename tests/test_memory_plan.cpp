// The memory plan (core/memory_plan.h): --max-memory's sizes, the budget's sources (cgroup v1 and
// v2 trees written here, /proc/meminfo's text), the refusal line, the search for what fits; and
// the plan's sizes against what is allocated: the allocator's count of bytes in use (glibc's
// mallinfo2) around the Model, KV cache and AdamW state each plan describes.
#include <gtest/gtest.h>
#include <malloc.h>

#include <filesystem>
#include <fstream>

#include "cli.h"
#include "core/memory_plan.h"
#include "core/rss.h"
#include "data/tokenizer.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "model/params.h"
#include "model_util.h"
#include "position/position.h"
#include "train/sharded_adamw.h"
#include "usage_error.h"

namespace alibi {
namespace {

namespace fs = std::filesystem;

TEST(MemoryPlan, MaxMemorySizes) {
  EXPECT_EQ(parse_memory_size("auto"), 0u);
  EXPECT_EQ(parse_memory_size("100000000"), 100000000u);
  EXPECT_EQ(parse_memory_size("8G"), 8000000000u);
  EXPECT_EQ(parse_memory_size("8GB"), 8000000000u);
  EXPECT_EQ(parse_memory_size("512M"), 512000000u);
  EXPECT_EQ(parse_memory_size("512mb"), 512000000u);
  EXPECT_EQ(parse_memory_size("1.5GiB"), uint64_t(1.5 * (1 << 30)));
  EXPECT_EQ(parse_memory_size("2Ki"), 2048u);
  EXPECT_EQ(parse_memory_size("3T"), 3000000000000u);
  for (const char* bad : {"", "lots", "-1G", "0", "0.1", "1.2.3G", "8X", "8GiBB", "1e9", "nan",
                          "inf", " 8G", "8 G", ".", "99999999999999999999999999999999"}) {
    SCOPED_TRACE(bad);
    test::expect_usage_error([&] { parse_memory_size(bad); },
                             {"--max-memory '" + std::string(bad) + "'", "8G"});
  }
}

TEST(MemoryPlan, FormatsBytesInThreeDigits) {
  EXPECT_EQ(format_bytes(512), "512 bytes");
  EXPECT_EQ(format_bytes(12345), "12.3 kB");
  EXPECT_EQ(format_bytes(386000000), "386 MB");
  EXPECT_EQ(format_bytes(23400000000), "23.4 GB");
  EXPECT_EQ(format_bytes(1990000000), "1.99 GB");
  EXPECT_EQ(format_bytes(999999999), "1.00 GB");
  EXPECT_EQ(format_bytes(UINT64_MAX), "more than 18 EB");
}

TEST(MemoryPlan, SaturatesInsteadOfWrapping) {
  EXPECT_EQ(sat_add(UINT64_MAX - 1, 2), UINT64_MAX);
  EXPECT_EQ(sat_mul(uint64_t(1) << 40, uint64_t(1) << 30), UINT64_MAX);
  EXPECT_EQ(sat_mul(3, 5), 15u);
  MemoryPlan p;
  p.add("a", UINT64_MAX - 5).add("b", 10).add("a", 1);
  EXPECT_EQ(p.total(), UINT64_MAX);
  EXPECT_EQ(p.of("a"), UINT64_MAX - 4);
  EXPECT_EQ(p.parts().size(), 2u);
  EXPECT_EQ(p.largest().name, "a");
  // A model plan for 2^31 x 2^31 tokens is "more than any machine", not a wrapped small number.
  EXPECT_EQ(Model::plan_bytes(test::small_model(PosKind::alibi), INT_MAX, INT_MAX, true,
                              *default_backend()),
            SIZE_MAX);
}

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

// cgroup v2: the tightest of the cgroup and its parents, counting inactive file pages as room;
// v1: limit_in_bytes, where ~2^63 means none; no limit anywhere: nullopt.
TEST(MemoryPlan, CgroupRoomIsTheTightestLimitUpTheTree) {
  test::TempDir dir("memplan_cgroup");
  const fs::path root = dir.path;
  write(root / "memory.stat", "inactive_file 0\n");
  write(root / "job/memory.max", "1000000000\n");
  write(root / "job/memory.current", "400000000\n");
  write(root / "job/memory.stat", "anon 1\ninactive_file 100000000\n");
  write(root / "job/task/memory.max", "max\n");
  write(root / "job/task/memory.current", "300000000\n");
  EXPECT_EQ(cgroup_room("0::/job/task\n", root.string()), 700000000u);
  write(root / "job/task/memory.max", "500000000\n");
  write(root / "job/task/memory.stat", "inactive_file 0\n");
  EXPECT_EQ(cgroup_room("0::/job/task\n", root.string()), 200000000u);
  // A path from another namespace is read at its nearest ancestor that exists here.
  EXPECT_EQ(cgroup_room("0::/job/gone/deeper\n", root.string()), 700000000u);
  EXPECT_EQ(cgroup_room("0::/\n", root.string()), std::nullopt);

  write(root / "memory/box/memory.limit_in_bytes", "2000000000\n");
  write(root / "memory/box/memory.usage_in_bytes", "500000000\n");
  write(root / "memory/box/memory.stat", "cache 9\ntotal_inactive_file 250000000\n");
  write(root / "memory/memory.limit_in_bytes", "9223372036854771712\n");
  EXPECT_EQ(cgroup_room("4:memory:/box\n2:cpu,cpuacct:/\n", root.string()), 1750000000u);
  EXPECT_EQ(cgroup_room("4:cpuset,memory:/\n", root.string()), std::nullopt);
  // Both hierarchies: the tighter.
  EXPECT_EQ(cgroup_room("4:memory:/box\n0::/job/task\n", root.string()), 200000000u);
}

TEST(MemoryPlan, MemAvailableAndTheBudget) {
  EXPECT_EQ(meminfo_available("MemTotal:  100 kB\nMemAvailable:   23286700 kB\n"),
            uint64_t(23286700) * 1024);
  EXPECT_EQ(meminfo_available("MemTotal: 100 kB\n"), std::nullopt);
  MemoryOptions o;
  o.max_memory = 123456789;
  EXPECT_EQ(memory_budget(o).bytes, 123456789u);
  EXPECT_EQ(memory_budget(o).source, "--max-memory");
  o.max_memory = 0;
  const MemoryBudget b = memory_budget(o);
  EXPECT_GT(b.bytes, current_rss_bytes()) << b.source;  // this process can at least stay
  o.ranks_on_host = 4;
  EXPECT_NE(memory_budget(o).source.find("/ 4 ranks on this host"), std::string::npos);
}

TEST(MemoryPlan, RefusalIsOneLineNamingWhatAndWhatFits) {
  MemoryPlan p;
  p.add(kInUse, 10000000).add("weights", 2000000000).add("activations", 410000000000);
  const MemoryBudget b{23400000000, "MemAvailable"};
  EXPECT_EQ(memory_line(p, b), "memory: process 10.0 MB, weights 2.00 GB, activations 410 GB = "
                               "412 GB of 23.4 GB available (MemAvailable)");
  bool asked = false;
  test::expect_usage_error(
      [&] {
        check_memory(p, b, "--batch 1000000 x --seq-len 128", [&] {
          asked = true;
          return std::string("--batch 56 would fit");
        });
      },
      {"--batch 1000000 x --seq-len 128 needs 412 GB (activations 410 GB); 23.4 GB is "
       "available (MemAvailable); --batch 56 would fit"});
  EXPECT_TRUE(asked);
  asked = false;
  check_memory(p, {UINT64_MAX, "MemAvailable"}, "x", [&] {
    asked = true;
    return std::string();
  });
  EXPECT_FALSE(asked) << "the advice is searched for only when the plan is refused";
}

TEST(MemoryPlan, LargestFittingAgreesWithAScan) {
  for (int64_t limit : {-3, 0, 1, 2, 17, 1000}) {
    for (int64_t hi : {int64_t(0), int64_t(1), int64_t(5), int64_t(999), int64_t(1) << 40}) {
      int calls = 0;
      const int64_t got = largest_fitting(1, hi, [&](int64_t v) {
        ++calls;
        return v <= limit;
      });
      const int64_t want = limit < 1 || hi < 1 ? 0 : std::min(limit, hi);
      EXPECT_EQ(got, want) << "limit " << limit << " hi " << hi;
      EXPECT_LE(calls, 43) << "a binary search";
    }
  }
}

// param_floats extrapolates two layers' tables to any depth: equal to the whole table.
TEST(MemoryPlan, ParamFloatsEqualsTheLayout) {
  for (PosKind pos : all_positions())
    for (int layers : {1, 2, 3, 7}) {
      ModelConfig c = test::small_model(pos, layers);
      position_method(pos).fill_defaults(c, 16);
      c.linear_bias = layers % 2 == 1;
      EXPECT_EQ(param_floats(c), make_param_layout(c).total) << pos_name(pos) << " " << layers;
    }
  ModelConfig huge = test::small_model(PosKind::alibi);
  huge.layers = 1000000000;  // planned without a table of 10^10 tensors
  EXPECT_GT(param_floats(huge), uint64_t(1) << 40);
}

// Bytes the allocator holds: what malloc handed out, small and large (mmapped) chunks.
size_t heap_in_use() {
  const struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kOwnMalloc = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kOwnMalloc = true;
#else
constexpr bool kOwnMalloc = false;
#endif
#else
constexpr bool kOwnMalloc = false;
#endif

// What is allocated between construction of each object and its plan: within 1% and the small
// bookkeeping vectors (name tables, slots) of 64 KiB.
void expect_planned(size_t before, size_t planned, const char* what) {
  const double got = double(heap_in_use() - before);
  EXPECT_NEAR(got, double(planned), 0.01 * double(planned) + 65536) << what;
}

TEST(MemoryPlan, PlansAreWhatIsAllocated) {
  if (kOwnMalloc) GTEST_SKIP() << "the sanitizer's malloc keeps no glibc statistics";
  const auto be = default_backend();
  ModelConfig c = test::small_model(PosKind::alibi, 3, 300);
  c.d_model = 96;
  c.ffn = 384;
  const size_t set = make_param_layout(c).total * sizeof(float);
  for (const bool training : {true, false}) {
    SCOPED_TRACE(training);
    const size_t before = heap_in_use();
    Model m(c, 4, 64, training, be);
    expect_planned(before, Model::plan_bytes(c, 4, 64, training, *be) + set * (training ? 2 : 1),
                   "Model: activations, weights (and gradients)");
    if (!training) {
      const size_t b = heap_in_use();
      KVCache full = m.make_cache(1000, false);
      expect_planned(b, Model::cache_bytes(c, 64, 1000, false, *be), "a full KV cache");
      const size_t b2 = heap_in_use();
      KVCache window = m.make_cache(300, true);
      expect_planned(b2, Model::cache_bytes(c, 64, 300, true, *be), "a sliding KV cache");
      const size_t b3 = heap_in_use();
      Model decoder(c, 4, 64, false, be, {.rows = 3});
      const Model::PlanBytes pb = Model::plan(c, 4, 64, false, *be, {.rows = 3});
      EXPECT_EQ(pb.logits, 3 * size_t(c.vocab) * sizeof(float));
      expect_planned(b3, pb.total + set, "a decoder keeping 3 rows of logits");
    }
  }
  const auto comm = single_process_comm();
  const ParamLayout layout = make_param_layout(c);
  for (const int accum : {1, 3}) {
    const size_t before = heap_in_use();
    ShardedAdamW opt(layout, be, *comm, accum);
    expect_planned(before, ShardedAdamW::sizes(layout.total, 1, 0, accum).bytes(),
                   "AdamW moments (and the step's gradient)");
  }
}

// A model on a checkpoint file: matrices read in place (bf16 as stored, and fp32 where the
// backend packs none), a layer's fp32 matrices packed (Backend::packed_weight_bytes: the CPU's,
// at 64-column blocks of rows) and the other tensors copied; the copies and the packed matrices
// are what the heap holds, the rest is the file's.
TEST(MemoryPlan, FileWeightsAreTheStoredMatricesAndTheOthersTwice) {
  test::TempDir dir("memplan_weights");
  const ModelConfig c = test::small_model(PosKind::alibi, 2, 300);
  Model m(c, 1, 8, false);
  m.init_weights(3);
  const ParamLayout full = make_param_layout(c), others = full.without_matrices();
  for (const WeightType wt : {WeightType::fp32, WeightType::bf16}) {
    size_t matrices = 0, packed = 0;  // bytes of the (out, in) matrices; of those packed
    for (const TensorInfo& t : full.tensors) {
      if (!t.matrix) continue;
      const bool layer = t.name != "wte" && t.name != "lm_head.w";
      const size_t p = layer && wt == WeightType::fp32
                           ? default_backend()->packed_weight_bytes(t.shape[0], t.shape[1])
                           : 0;
      packed += (p + 63) / 64 * 64;
      matrices +=
          p > 0 ? (p + 63) / 64 * 64 : size_t(t.shape[0]) * weight_row_bytes(wt, t.shape[1]);
    }
    EXPECT_EQ(packed > 0, wt == WeightType::fp32) << "the CPU packs fp32 layers";
    const std::string path = write_checkpoint(dir / weight_type_name(wt), c, nlohmann::json{}, 1,
                                              Tokenizer::bytes(), m.params, nullptr, nullptr, 1,
                                              wt);
    const Safetensors st = Safetensors::read(path);
    EXPECT_EQ(Model::file_weight_bytes(c, st, *default_backend()),
              matrices + 2 * others.total * sizeof(float))
        << weight_type_name(wt);
    if (kOwnMalloc) continue;
    // oneDNN's state made once per process (its cache of the packing's reorders, about 80 KB
    // here) is no model's: a first model makes it.
    { const Model warm(c, 1, 8, st, default_backend()); }
    const size_t before = heap_in_use();
    Model on_file(c, 1, 8, st, default_backend());
    expect_planned(before,
                   Model::plan_bytes(c, 1, 8, false, *default_backend()) +
                       others.total * sizeof(float) + packed,
                   "activations, the copied tensors and the packed matrices");
  }
}

}  // namespace
}  // namespace alibi
