// --device on every subcommand that computes: `cpu` (the default) runs, anything else is one
// line naming the value and the devices of this build, exit code 2, before any work.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <string>

#include "cli.h"
#include "core/error.h"
#include "kernels/backend.h"
#include "model/checkpoint.h"
#include "model/model.h"

namespace alibi {
namespace {

class DeviceCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir("device");
    ModelConfig c;
    c.vocab = 256, c.layers = 1, c.d_model = 16, c.heads = 2, c.ffn = 32;
    Model m(c, 1, 1, false);
    m.init_weights(3);
    write_checkpoint(path("run"), c, nlohmann::json{{"seq_len", 8}}, 1, Tokenizer::bytes(),
                     m.params, nullptr, nullptr, 1);
    test::write_text(path("text.txt"), std::string(200, 'a') + "\n");
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string path(const std::string& s) { return *dir_ / s; }
  static test::TempDir* dir_;
};
test::TempDir* DeviceCli::dir_ = nullptr;

TEST_F(DeviceCli, CpuIsAcceptedEverywhere) {
  for (const std::string& args :
       {"eval " + path("run") + " --text " + path("text.txt") + " --lengths 8 --device cpu",
        "generate " + path("run") + " --prompt ab --max-new-tokens 3 --device cpu",
        "train --data " + path("none") + " --out " + path("out") + " --device cpu"}) {
    const auto r = test::run_cli("--threads 1 " + args, path("e"));
    if (args.starts_with("train")) {  // gets past the device to the missing data folder
      EXPECT_EQ(r.code, 2) << r.err;
      EXPECT_NE(r.err.find("--data"), std::string::npos) << r.err;
    } else {
      EXPECT_EQ(r.code, 0) << args << "\n" << r.err;
    }
  }
}

TEST_F(DeviceCli, UnknownDeviceIsOneLineNamingItAndTheBuildsDevices) {
  for (const std::string& args :
       {"train --data " + path("none") + " --out " + path("out") + " --device tpu",
        "eval " + path("run") + " --text " + path("text.txt") + " --device tpu",
        "generate " + path("run") + " --prompt ab --device tpu",
        std::string("bench --configs tiny --device tpu")}) {
    const auto r = test::run_cli(args, path("e"));
    EXPECT_EQ(r.code, 2) << args << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << "\n" << r.err;
    EXPECT_NE(r.err.find("--device 'tpu'"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(device_names()), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << args << ": nothing before the error";
  }
}

// A build with the CUDA backend keeps it in a module loaded on first use (kernels/backend.cpp):
// asking for it loads the module, which then gives a backend or, without a GPU, the one-line
// refusal naming --device; never a module that does not load. Before the first use the process
// has not mapped the CUDA runtime.
TEST(Device, TheCudaModuleLoadsOnFirstUse) {
  if (device_names().find("cuda") == std::string::npos)
    GTEST_SKIP() << "this build has no CUDA backend (no nvcc when it was configured)";
  auto mapped = [](const std::string& lib) {
    std::ifstream maps("/proc/self/maps");
    for (std::string line; std::getline(maps, line);)
      if (line.find(lib) != std::string::npos) return true;
    return false;
  };
  const bool before = mapped("libalibi_cuda.so");  // an earlier test may have loaded it
  if (!before) EXPECT_FALSE(mapped("libcublas")) << "the program itself links cuBLAS";
  try {
    make_backend("cuda", MatmulPrecision::fp32);
  } catch (const UsageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("--device cuda: no CUDA device is visible"), std::string::npos) << what;
  }
  EXPECT_TRUE(mapped("libalibi_cuda.so"));
  if (!before) EXPECT_TRUE(mapped("libcublas")) << "the module brings cuBLAS with it";
}

// --device is a global option, as --threads: alibi --help lists it with its default, and every
// subcommand's help names both.
TEST(Device, HelpListsTheFlagWithItsDefault) {
  test::TempDir dir("device_help");
  const auto top = test::run_cli("--help", dir / "e");
  EXPECT_EQ(top.code, 0);
  const size_t at = top.out.find("--device");
  ASSERT_NE(at, std::string::npos) << top.out;
  EXPECT_NE(top.out.find("=cpu", at), std::string::npos) << top.out;
  for (const char* sub : {"train", "eval", "generate", "bench", "prepare", "tokenize"}) {
    const auto r = test::run_cli(std::string(sub) + " --help", dir / "e");
    EXPECT_EQ(r.code, 0) << sub;
    EXPECT_NE(r.out.find("--threads N"), std::string::npos) << sub << ": " << r.out;
    EXPECT_NE(r.out.find("--device cpu|cuda"), std::string::npos) << sub << ": " << r.out;
  }
}

// One rule for every global option: before or after the subcommand; and --device is refused by
// name where nothing computes on a device.
TEST(Device, GlobalOptionsGoBeforeOrAfterTheSubcommand) {
  test::TempDir dir("device_global");
  test::write_text(dir / "text.txt", "hello");
  const std::string tokenize = "tokenize --tokenizer bytes --text " + dir / "text.txt";
  for (const std::string& args : {"--threads 1 " + tokenize, tokenize + " --threads 1"}) {
    const auto r = test::run_cli(args, dir / "e");
    EXPECT_EQ(r.code, 0) << args << "\n" << r.err;
  }
  const std::string train = "train --data " + dir / "none" + " --out " + dir / "out";
  for (const std::string& args : {"--threads 1 --device tpu " + train, train + " --device tpu"})
    test::expect_cli_error(test::run_cli(args, dir / "e"), "--device 'tpu'");
  test::expect_cli_error(
      test::run_cli("--device cpu " + tokenize, dir / "e"),
      "--device cpu applies to train, eval, generate, serve and bench, not tokenize");
}

}  // namespace
}  // namespace alibi
