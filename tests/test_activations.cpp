// The activation plan: one description sizes and carves the arena (its buffers tile it without
// overlap, backward buffers only when training), and the attention scratch in it refuses more
// threads than it was planned for.
#include <gtest/gtest.h>
#include <omp.h>

#include <set>

#include "model/activations.h"
#include "model/model.h"
#include "model_util.h"

namespace alibi {
namespace {

TEST(ActivationPlan, BuffersTileTheArenaWithoutOverlap) {
  const ModelConfig c = test::small_model(PosKind::alibi, /*layers=*/3);
  const AttnWorkspace attn{nullptr, 1000, 2};
  for (bool training : {true, false}) {
    SCOPED_TRACE(training);
    ArenaPlanner p(nullptr, training);
    Activations a;
    describe_activations(p, c, 2, 7, attn, a, 0, 2 * 7);
    size_t end = 0;
    std::set<std::string> names;
    for (const ArenaPlanner::Entry& e : p.entries()) {
      EXPECT_GE(e.offset, end) << e.name << " overlaps the buffer before it";
      EXPECT_LT(e.offset - end, 4u) << e.name << ": only alignment between buffers";
      size_t n = 1;
      for (int64_t d : e.shape) n *= size_t(d);
      EXPECT_EQ(e.bytes, 4 * n) << e.name << ": floats and int32 token ids";
      end = e.offset + e.bytes;
      EXPECT_TRUE(names.insert(e.name).second) << e.name << " twice";
      EXPECT_TRUE(training || e.pass == Pass::forward) << e.name << " planned for inference";
    }
    EXPECT_EQ(end, p.bytes());
    EXPECT_EQ(names.count("h.2.x_in"), training ? 1u : 0u) << "inference keeps one layer";
    EXPECT_EQ(names.count("dres"), training ? 1u : 0u);
    EXPECT_EQ(a.attn_ws.floats, attn.floats);
  }
  EXPECT_LT(Model::plan_bytes(c, 2, 7, false, *default_backend()),
            Model::plan_bytes(c, 2, 7, true, *default_backend()));
}

TEST(ActivationPlan, AttentionScratchRefusesMoreThreadsThanPlanned) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  Model m(test::small_model(PosKind::alibi), 1, 8, false);  // planned for one thread
  m.init_weights(1);
  const std::vector<int32_t> tok = test::random_tokens(8, 23, 2);
  EXPECT_NO_THROW(m.forward(tok.data(), nullptr, 1, 8));
  omp_set_num_threads(2);
  EXPECT_THROW(m.forward(tok.data(), nullptr, 1, 8), std::logic_error);
  omp_set_num_threads(saved);
}

}  // namespace
}  // namespace alibi
