// The field tables (core/fields.h) of ModelConfig and TrainOptions: every row round-trips
// through a checkpoint's JSON, takes its legacy value when an older checkpoint lacks it, is in
// --help with its default, and is checked by its role on --resume and --init-from; the PyTorch
// twin's config agrees with the table.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "cli.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "position/position.h"
#include "train/train.h"
#include "usage_error.h"

namespace alibi {
namespace {

using test::run_cli;
using test::TempDir;

// A valid value of the field other than its value in s: the next choice, the other truth
// value, a larger number.
template <class S>
nlohmann::json another_value(const Field<S>& f, const S& s) {
  const nlohmann::json v = f.get(s);
  if (v.is_boolean()) return !v.get<bool>();
  if (v.is_number_integer()) return v.get<int64_t>() + 1;
  if (v.is_number_float()) return v.get<double>() == 0 ? 0.25 : v.get<double>() / 2;
  if (f.type == "TEXT") return v.get<std::string>() + "-other";
  std::stringstream choices(f.type);
  std::vector<std::string> names;
  for (std::string c; std::getline(choices, c, '|');) names.push_back(c);
  EXPECT_GE(names.size(), 2u) << f.key << " has no other choice in '" << f.type << "'";
  return names.at(names.at(0) == v.get<std::string>() ? 1 : 0);
}

TEST(ModelFields, EveryRowRoundTripsThroughTheCheckpointJson) {
  for (const Field<ModelConfig>& f : model_fields()) {
    SCOPED_TRACE(f.key);
    ModelConfig c;
    const nlohmann::json v = another_value(f, c);
    f.set(c, v, f.name());
    const ModelConfig back = ModelConfig::from_json(c.to_json());
    EXPECT_EQ(f.get(back), v);
    EXPECT_EQ(back.to_json(), c.to_json());
  }
}

TEST(ModelFields, AMissingKeyTakesItsLegacyValueOrIsRefusedByName) {
  const ModelConfig c;
  for (const Field<ModelConfig>& f : model_fields()) {
    SCOPED_TRACE(f.key);
    nlohmann::json j = c.to_json();
    j.erase(f.key);
    if (f.legacy) {
      EXPECT_EQ(f.get(ModelConfig::from_json(j)), *f.legacy);
    } else {
      test::expect_usage_error([&] { ModelConfig::from_json(j); },
                               {"config has no '" + f.key + "'"});
    }
  }
  // A stored value of the wrong type names the key.
  nlohmann::json j = c.to_json();
  j["layers"] = "four";
  test::expect_usage_error([&] { ModelConfig::from_json(j); }, {"config layers", "four"});
}

TEST(ModelFields, ShapeIsEveryShapeRowThatApplies) {
  const ModelConfig base;
  for (const Field<ModelConfig>& f : model_fields()) {
    SCOPED_TRACE(f.key);
    ModelConfig c = base;
    f.set(c, another_value(f, c), f.name());
    EXPECT_EQ(base.same_shape(c), !(f.role == Role::shape && f.applies_to(base)));
  }
}

TEST(TrainFields, EveryStoredRowRoundTripsThroughTheCheckpointJson) {
  for (const Field<TrainOptions>& f : train_fields()) {
    if (f.key.empty()) continue;
    SCOPED_TRACE(f.key);
    TrainOptions o;
    const nlohmann::json v = another_value(f, o);
    f.set(o, v, f.name());
    const TrainOptions back = TrainOptions::from_json(o.to_json(), o.model);
    EXPECT_EQ(f.get(back), v);
  }
}

// The PyTorch twin's Config (tests/ref/twin.py) names ModelConfig's keys and defaults: each of
// its fields is a row of the table with the same default.
TEST(ModelFields, TheTwinsConfigAgreesWithTheTable) {
  const std::string twin = test::read_text(ALIBI_SOURCE_DIR "/tests/ref/twin.py");
  const size_t at = twin.find("class Config:");
  ASSERT_NE(at, std::string::npos);
  const std::string body = twin.substr(at, twin.find("\n    @property", at) - at);
  const std::regex row(R"(\n    (\w+): (int|str|bool|float) = ([^ \n#]+))");
  const nlohmann::json defaults = ModelConfig{}.to_json();
  int rows = 0;
  for (std::sregex_iterator it(body.begin(), body.end(), row), end; it != end; ++it, ++rows) {
    const std::string key = (*it)[1], type = (*it)[2], value = (*it)[3];
    SCOPED_TRACE(key);
    ASSERT_NE(find_field(model_fields(), key), nullptr) << "the twin has a field C++ lacks";
    const nlohmann::json want = type == "str"    ? nlohmann::json(value.substr(1, value.size() - 2))
                                : type == "bool" ? nlohmann::json(value == "True")
                                                 : nlohmann::json::parse(value);
    EXPECT_EQ(defaults.at(key), want) << "default in the twin: " << value;
  }
  EXPECT_GE(rows, 10) << body;
}

class TrainFieldsCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("fields");
    test::prepare_bundled(*dir_, 60000);
    const auto r = run_cli("--threads 1 train --data " + *dir_ / "data" + " --out " +
                               *dir_ / "run" + " --layers 1 --d-model 16 --heads 2 --ffn 16 "
                               "--seq-len 16 --batch 2 --steps 1 --eval-every 0",
                           *dir_ / "train.err");
    ASSERT_EQ(r.code, 0) << r.err;
  }
  static void TearDownTestSuite() { delete dir_; }
  static TempDir* dir_;
};
TempDir* TrainFieldsCli::dir_ = nullptr;

TEST_F(TrainFieldsCli, HelpListsEveryFlagWithItsDefault) {
  const auto r = run_cli("train --help", *dir_ / "help.err");
  ASSERT_EQ(r.code, 0);
  const TrainOptions defaults;
  for (const Field<TrainOptions>& f : train_cli_fields()) {
    if (f.flag.empty()) continue;
    SCOPED_TRACE(f.flag);
    const size_t at = r.out.find(f.flag + (f.is_switch ? "" : " "));
    ASSERT_NE(at, std::string::npos) << r.out;
    if (!f.is_switch && !f.show(defaults).empty())
      EXPECT_EQ(r.out.compare(at + f.flag.size() + 1 + f.type.size(), 1 + f.show(defaults).size(),
                              "=" + f.show(defaults)),
                0)
          << r.out.substr(at, 80);
  }
}

// Every flag a resume keeps is refused when it says otherwise; every model flag is refused
// with --init-from, whose checkpoint gives the model.
TEST_F(TrainFieldsCli, ResumeAndInitFromRefuseWhatTheCheckpointGives) {
  const Checkpoint ck = read_checkpoint(*dir_ / "run");
  const TrainOptions was = TrainOptions::from_json(ck.train, ck.config);
  int resumed = 0, initialised = 0;
  for (const Field<TrainOptions>& f : train_cli_fields()) {
    if (f.flag.empty() || f.is_switch || f.role == Role::free || !f.applies_to(was)) continue;
    SCOPED_TRACE(f.flag);
    const nlohmann::json v = another_value(f, was);
    const std::string value = v.is_string() ? v.get<std::string>() : v.dump();
    test::expect_cli_error(
        run_cli("--threads 1 train --resume " + *dir_ / "run" + " " + f.flag + " " + value,
                *dir_ / "r.err"),
        f.flag + " " + v.dump() + " contradicts --resume");
    ++resumed;
    if (f.role != Role::shape && f.role != Role::model) continue;
    test::expect_cli_error(run_cli("--threads 1 train --data " + *dir_ / "data" + " --out " +
                                       *dir_ / "new --init-from " + *dir_ / "run" + " " + f.flag +
                                       " " + value,
                                   *dir_ / "i.err"),
                           f.flag + " contradicts --init-from");
    ++initialised;
  }
  EXPECT_GE(resumed, 25);
  EXPECT_GE(initialised, 15);
}

}  // namespace
}  // namespace alibi
