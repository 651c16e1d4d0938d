// The position methods after ALiBi (KERPLE, Sandwich, FIRE): their bad input. A config field out
// of its range, and a checkpoint whose learned parameters left the method's domain, are one-line
// errors naming the flag or tensor and the value; through the CLI, exit 2.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "cli.h"
#include "data/tokenizer.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "usage_error.h"

namespace alibi {
namespace {

ModelConfig tiny(PosKind pos) {
  ModelConfig c;
  c.vocab = 256;
  c.layers = 2;
  c.d_model = 16;
  c.heads = 2;
  c.ffn = 32;
  c.pos = pos;
  c.fire_length = 16;
  return c;
}

TEST(SuccessorConfig, OutOfRangeFieldsNameTheFlagAndValue) {
  ModelConfig c = tiny(PosKind::sandwich);
  c.sandwich_dim = 7;
  test::expect_usage_error([&] { c.validate(); }, {"--sandwich-dim", "7", "even"});
  c.sandwich_dim = 0;
  test::expect_usage_error([&] { c.validate(); }, {"--sandwich-dim", "0"});
  c = tiny(PosKind::fire);
  c.fire_width = 300;
  test::expect_usage_error([&] { c.validate(); }, {"--fire-width", "300", "256"});
  c.fire_width = 0;
  test::expect_usage_error([&] { c.validate(); }, {"--fire-width", "0"});
  c = tiny(PosKind::fire);
  c.fire_length = -1;
  test::expect_usage_error([&] { c.validate(); }, {"--fire-length", "-1"});
}

// A checkpoint of `pos` whose tensor `name` holds `value` at flat index 3 (layer 1, head 1).
std::string checkpoint_with(const test::TempDir& dir, PosKind pos, const std::string& name,
                            float value) {
  const ModelConfig c = tiny(pos);
  Model m(c, 1, 1, false);
  m.init_weights(5);
  std::vector<float> w = m.params.to_host();
  w[m.layout.find(name)->offset + 3] = value;
  m.params.from_host(w);
  const nlohmann::json train = {{"seq_len", 16}};
  return write_checkpoint(dir / pos_name(pos), c, train, 1, Tokenizer::bytes(), m.params,
                          nullptr, nullptr, 1);
}

TEST(SuccessorCheckpoint, ParametersOutOfTheMethodsDomainAreRefusedByName) {
  const test::TempDir dir("successor_ckpt");
  struct Case {
    PosKind pos;
    const char* name;
    float value;
  };
  for (const Case& k : {Case{PosKind::kerple_log, "kerple_r2", -0.5f},
                        Case{PosKind::kerple_log, "kerple_r1", 0.0f},
                        Case{PosKind::kerple_power, "kerple_r2", 2.5f},
                        Case{PosKind::kerple_power, "kerple_r1", NAN}}) {
    SCOPED_TRACE(std::string(pos_name(k.pos)) + " " + k.name);
    const std::string path = checkpoint_with(dir, k.pos, k.name, k.value);
    test::expect_usage_error([&] { read_checkpoint(path); },
                             {path, k.name, "layer 1 head 1", pos_name(k.pos)});
  }
}

TEST(SuccessorCheckpoint, TheCliRefusesOneLineExit2AndAcceptsTheValidOne) {
  const test::TempDir dir("successor_cli");
  const std::string bad = checkpoint_with(dir, PosKind::kerple_power, "kerple_r2", 3.0f);
  test::expect_cli_error(
      test::run_cli("generate " + bad + " --prompt ab --max-new-tokens 2", dir / "err_bad"),
      "kerple_r2");
  // The same file with r2 inside (0, 2] generates.
  const std::string good = checkpoint_with(dir, PosKind::kerple_power, "kerple_r2", 2.0f);
  const test::CliResult r =
      test::run_cli("generate " + good + " --prompt ab --max-new-tokens 2", dir / "err_good");
  EXPECT_EQ(r.code, 0) << r.err;
}

}  // namespace
}  // namespace alibi
