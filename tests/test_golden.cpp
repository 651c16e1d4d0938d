// Golden tests: the C++ model against its PyTorch twin (tests/ref/twin.py).
//
// Each tests/golden/<case>.safetensors (written by `python3 tests/ref/make_golden.py`) holds a
// tiny model's initial parameters, one batch with the float64 reference's logits, loss and every
// gradient, and ten training steps (batches and the loss of each step before its AdamW update).
// See make_golden.py for the exact contents.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "model/config.h"
#include "model/model.h"
#include "model/params.h"
#include "position/position.h"
#include "positions.h"
#include "train/optim.h"

namespace {

using namespace alibi;

// The references are float64 computations rounded to fp32; the model runs in fp32. The fp32
// PyTorch twin on the same files reaches, at worst over all cases: logits 5.4e-7 relative to
// max(1, max|ref|), gradients 1.1e-6 relative to the tensor's max|ref|, training losses 7.6e-7
// relative. The tolerances leave ~20-100x headroom for a different summation order (blocked
// matmuls, online softmax) but catch any formula error, which shows up at 1e-3 or more.
constexpr double kLogitTol = 1e-5;  // max|c - ref| <= kLogitTol * max(1, max|ref|), logits and loss
constexpr double kGradTol = 1e-4;   // max|c - ref| <= kGradTol * max|ref|, per gradient tensor
constexpr double kTrainTol = 1e-4;  // |c - ref| <= kTrainTol * |ref|, each step's loss and norm

// One case per registered method, named after it (a new method needs its golden file), and the
// variants that make_golden.py adds for particular methods.
std::vector<std::string> golden_cases() {
  std::vector<std::string> cases;
  for (PosKind p : all_positions()) cases.push_back(test::pos_test_name(p));
  for (const char* v : {"alibi_nh8", "alibi_trainable", "alibi_bidirectional", "t5_bidirectional",
                        "rotary_bidirectional", "rotary_pi", "rotary_ntk", "rotary_yarn",
                        "alibi_interpolate", "kerple_log_bidirectional", "fire_bidirectional"})
    cases.push_back(v);
  return cases;
}

// Names in a golden file that are not parameters.
const char* const kReservedPrefixes[] = {"input.", "out.", "grad.", "train.", "t5.", "alibi."};

bool is_param_name(const std::string& name) {
  for (const char* p : kReservedPrefixes)
    if (name.rfind(p, 0) == 0) return false;
  return true;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "," : "") << s[i];
  os << ")";
  return os.str();
}

struct Golden {
  std::string path;
  Safetensors st;
  ModelConfig cfg;
  nlohmann::json train;
  int B = 0, T = 0;
};

Golden load_golden(const std::string& name) {
  Golden g;
  g.path = std::string(ALIBI_SOURCE_DIR) + "/tests/golden/" + name + ".safetensors";
  g.st = Safetensors::read(g.path);
  // The twin's Config names ModelConfig's keys (ModelFields.TheTwinsConfigAgreesWithTheTable);
  // files written before a field existed take its legacy value.
  g.cfg = ModelConfig::from_json(nlohmann::json::parse(g.st.metadata.at("config")));
  g.cfg.validate();
  g.train = nlohmann::json::parse(g.st.metadata.at("train"));
  const StTensor& tokens = g.st.at("input.tokens");
  if (tokens.shape.size() != 2) throw std::runtime_error(g.path + ": input.tokens is not (B,T)");
  g.B = int(tokens.shape[0]);
  g.T = int(tokens.shape[1]);
  return g;
}

// Largest |c - ref| and where, and the largest |ref|.
struct Diff {
  double max_abs_diff = 0, max_abs_ref = 0;
  size_t worst = 0;
  float c_at_worst = 0, ref_at_worst = 0;
};

Diff compare(const float* c, const float* ref, size_t n) {
  Diff d;
  for (size_t i = 0; i < n; ++i) {
    const double e = std::fabs(double(c[i]) - double(ref[i]));
    d.max_abs_ref = std::max(d.max_abs_ref, std::fabs(double(ref[i])));
    if (e > d.max_abs_diff || std::isnan(e)) {
      d.max_abs_diff = std::isnan(e) ? INFINITY : e;
      d.worst = i;
      d.c_at_worst = c[i];
      d.ref_at_worst = ref[i];
    }
  }
  return d;
}

std::string describe(const std::string& what, const Diff& d, double scale, double tol) {
  std::ostringstream os;
  os.precision(8);
  os << what << ": max|c - ref| = " << d.max_abs_diff << " at flat index " << d.worst
     << " (c = " << d.c_at_worst << ", ref = " << d.ref_at_worst << "), max|ref| = "
     << d.max_abs_ref << ", error/scale = " << d.max_abs_diff / scale << " vs tolerance " << tol;
  return os.str();
}

// Copies every parameter from the golden file into model.params, after checking that the file's
// parameter names are exactly make_param_layout's (both ways) with the same shapes.
void load_params(const Golden& g, Model& model) {
  std::set<std::string> layout_names, file_names;
  for (const TensorInfo& t : model.layout.tensors) layout_names.insert(t.name);
  for (const auto& [name, t] : g.st.tensors)
    if (is_param_name(name)) file_names.insert(name);
  for (const std::string& n : layout_names)
    ASSERT_TRUE(file_names.count(n)) << g.path << " lacks parameter '" << n << "' of the layout";
  for (const std::string& n : file_names)
    ASSERT_TRUE(layout_names.count(n)) << g.path << " has parameter '" << n
                                       << "' that make_param_layout does not";
  for (const TensorInfo& info : model.layout.tensors) {
    const StTensor& t = g.st.at(info.name);
    ASSERT_EQ(t.dtype, "F32") << info.name;
    ASSERT_EQ(t.shape, info.shape) << info.name << ": file " << shape_str(t.shape) << ", layout "
                                   << shape_str(info.shape);
    std::copy(t.f32(), t.f32() + info.numel, model.params.get(info.name));
  }
}

class GoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTest, ForwardBackward) {
  const Golden g = load_golden(GetParam());
  Model model(g.cfg, g.B, g.T);
  ASSERT_NO_FATAL_FAILURE(load_params(g, model));

  const float loss =
      model.forward(g.st.at("input.tokens").i32(), g.st.at("input.targets").i32(), g.B, g.T);

  const StTensor& ref_logits = g.st.at("out.logits");
  ASSERT_EQ(ref_logits.numel(), int64_t(g.B) * g.T * g.cfg.vocab);
  const Diff dl = compare(model.logits(), ref_logits.f32(), size_t(ref_logits.numel()));
  const double logit_scale = std::max(1.0, dl.max_abs_ref);
  EXPECT_LE(dl.max_abs_diff, kLogitTol * logit_scale)
      << describe("logits", dl, logit_scale, kLogitTol);

  const float ref_loss = g.st.at("out.loss").f32()[0];
  const double loss_scale = std::max(1.0, std::fabs(double(ref_loss)));
  EXPECT_LE(std::fabs(double(loss) - ref_loss), kLogitTol * loss_scale)
      << "loss " << loss << " vs reference " << ref_loss;

  model.grads.zero();
  model.backward(1.0f);

  // Check every gradient tensor; report all that fail and the worst one. A gradient that
  // vanishes in exact arithmetic (the float64 reference is rounding noise, below 1e-12: FIRE's
  // fire_b2 adds one constant per head to every score of a row, which softmax cancels) is held
  // to the model's gradient scale, the largest max|ref| of all, instead of its own.
  double model_scale = 0;
  for (const TensorInfo& info : model.layout.tensors) {
    const StTensor& ref = g.st.at("grad." + info.name);
    ASSERT_EQ(ref.shape, info.shape) << "grad." << info.name;
    model_scale = std::max(model_scale, compare(ref.f32(), ref.f32(), info.numel).max_abs_ref);
  }
  std::string worst_msg, failures;
  double worst_ratio = -1;
  for (const TensorInfo& info : model.layout.tensors) {
    const StTensor& ref = g.st.at("grad." + info.name);
    const Diff d = compare(model.grads.get(info.name), ref.f32(), info.numel);
    const double scale = d.max_abs_ref < 1e-12 ? model_scale : d.max_abs_ref;
    const double ratio = d.max_abs_diff / scale;
    const std::string msg = describe("grad." + info.name, d, scale, kGradTol);
    if (ratio > worst_ratio) worst_ratio = ratio, worst_msg = msg;
    if (!(ratio <= kGradTol)) failures += "  " + msg + "\n";
  }
  EXPECT_TRUE(failures.empty()) << "gradients over tolerance:\n"
                                << failures << "worst: " << worst_msg;
  std::cout << "[ golden   ] " << GetParam() << " logits error/scale "
            << dl.max_abs_diff / logit_scale << "; worst " << worst_msg << "\n";
}

TEST_P(GoldenTest, Training) {
  const Golden g = load_golden(GetParam());
  Model model(g.cfg, g.B, g.T);
  ASSERT_NO_FATAL_FAILURE(load_params(g, model));

  const nlohmann::json& tj = g.train;
  const LrSchedule sched{tj.at("lr").get<float>(), tj.at("warmup").get<int64_t>(),
                         tj.at("steps").get<int64_t>(), tj.at("min_lr_ratio").get<float>()};
  const AdamWConfig adamw{tj.at("beta1").get<float>(), tj.at("beta2").get<float>(),
                          tj.at("eps").get<float>(), tj.at("weight_decay").get<float>()};
  const float clip = tj.at("clip").get<float>();
  const int steps = tj.at("steps").get<int>();

  const StTensor& batches = g.st.at("train.batches");  // (steps, B, T+1)
  ASSERT_EQ(batches.shape, (std::vector<int64_t>{steps, g.B, g.T + 1}));
  const float* ref_losses = g.st.at("train.losses").f32();     // (steps)
  const float* ref_norms = g.st.at("train.grad_norms").f32();  // (steps)

  ParamSet m(model.layout), v(model.layout);
  std::vector<int32_t> tokens(size_t(g.B) * g.T), targets(size_t(g.B) * g.T);  // (B,T)
  double worst_rel = 0;
  for (int s = 0; s < steps; ++s) {
    for (int b = 0; b < g.B; ++b) {
      const int32_t* row = batches.i32() + (size_t(s) * g.B + b) * (g.T + 1);
      std::copy(row, row + g.T, tokens.data() + size_t(b) * g.T);
      std::copy(row + 1, row + g.T + 1, targets.data() + size_t(b) * g.T);
    }
    model.grads.zero();
    const float loss = model.forward(tokens.data(), targets.data(), g.B, g.T);
    model.backward(1.0f);
    const float norm = clip_grad_norm(model.grads, clip);
    adamw_step(model.params, model.grads, m, v, sched.at(s), s + 1, adamw);
    model.project_params();  // as TrainLoop and the twin do after each step

    const double rel_loss = std::fabs(double(loss) - ref_losses[s]) / std::fabs(ref_losses[s]);
    const double rel_norm = std::fabs(double(norm) - ref_norms[s]) / std::fabs(ref_norms[s]);
    worst_rel = std::max({worst_rel, rel_loss, rel_norm});
    EXPECT_LE(rel_loss, kTrainTol) << "step " << s << ": loss " << loss << " vs reference "
                                   << ref_losses[s];
    EXPECT_LE(rel_norm, kTrainTol) << "step " << s << ": gradient norm " << norm
                                   << " vs reference " << ref_norms[s] << " (clip " << clip << ")";
  }
  std::cout << "[ golden   ] " << GetParam() << " training: worst relative error over " << steps
            << " steps " << worst_rel << "\n";
}

// The cases whose golden file holds a position table (alibi slopes or t5 buckets).
class GoldenTables : public ::testing::TestWithParam<const char*> {};

TEST_P(GoldenTables, PositionTables) {
  const Golden g = load_golden(GetParam());
  bool checked = false;
  if (g.st.has("alibi.slopes")) {
    const StTensor& ref = g.st.at("alibi.slopes");
    const std::vector<float> slopes = alibi_slopes(g.cfg.heads);
    ASSERT_EQ(int64_t(slopes.size()), ref.numel());
    for (size_t h = 0; h < slopes.size(); ++h)
      EXPECT_EQ(slopes[h], ref.f32()[h]) << "slope of head " << h << " of " << g.cfg.heads;
    checked = true;
  }
  if (g.st.has("t5.buckets")) {
    const StTensor& ref = g.st.at("t5.buckets");
    // buckets per direction: all of them causal, half bidirectional
    const int NB = g.cfg.causal ? g.cfg.t5_buckets : g.cfg.t5_buckets / 2;
    const int M = g.cfg.t5_max_distance;
    const std::vector<int32_t> table = t5_bucket_table(NB, M);
    ASSERT_EQ(int64_t(table.size()), ref.numel());
    for (int d = 0; d < M; ++d) {
      EXPECT_EQ(table[d], ref.i32()[d])
          << "t5_bucket_table(" << NB << ", " << M << ")[" << d << "]";
      EXPECT_EQ(t5_bucket(d, NB, M), ref.i32()[d]) << "t5_bucket(" << d << ")";
    }
    // Past the table every distance saturates to the last bucket (kernels/attention.h).
    for (int d = M; d < 4 * M; ++d)
      EXPECT_EQ(t5_bucket(d, NB, M), NB - 1) << "t5_bucket(" << d << ")";
    checked = true;
  }
  EXPECT_TRUE(checked) << GetParam() << " has no position table in its golden file";
}

INSTANTIATE_TEST_SUITE_P(Cases, GoldenTest, ::testing::ValuesIn(golden_cases()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });
INSTANTIATE_TEST_SUITE_P(Cases, GoldenTables,
                         ::testing::Values("alibi", "t5", "alibi_nh8", "t5_bidirectional"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param);
                         });

}  // namespace
