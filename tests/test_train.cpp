// The training job end to end through the CLI: bit-identical resume, signals, bad input.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "cli.h"
#include "core/safetensors.h"
#include "kernels/precision.h"
#include "model/checkpoint.h"

namespace alibi {
namespace {

namespace fs = std::filesystem;
using test::expect_cli_error;
using test::run_cli;
using test::TempDir;

// A small model that trains in well under a second per step on 2 cores.
const std::string kTiny =
    " --layers 2 --d-model 32 --heads 4 --ffn 64 --seq-len 32 --batch 4 --warmup 5 --lr 3e-3"
    " --eval-every 10 --eval-windows 8 --log-every 10 --seed 5";

class TrainCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("train");
    test::prepare_bundled(*dir_);
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string data() { return *dir_ / "data"; }
  static std::string path(const std::string& s) { return *dir_ / s; }
  static TempDir* dir_;
};
TempDir* TrainCli::dir_ = nullptr;

// Every tensor of two checkpoints, byte for byte (weights and both AdamW moments).
void expect_identical(const std::string& a, const std::string& b) {
  const Safetensors x = Safetensors::read(a), y = Safetensors::read(b);
  ASSERT_EQ(x.tensors.size(), y.tensors.size());
  for (const auto& [name, t] : x.tensors) {
    ASSERT_TRUE(y.has(name)) << name;
    EXPECT_TRUE(t.same_bytes(y.at(name))) << "tensor " << name << " differs";
  }
  EXPECT_EQ(x.metadata.at("step"), y.metadata.at("step"));
}

TEST_F(TrainCli, ResumeIsBitIdentical) {
  std::vector<std::pair<std::string, std::string>> runs = {{"alibi", ""}, {"t5", ""}};
  if (cpu_has_bf16()) runs.push_back({"alibi", " --dtype bf16"});  // bf16 attention and gemm
  for (const auto& [pos, extra] : runs) {
    SCOPED_TRACE(pos + extra);
    const std::string p = " --pos " + pos + " --dropout 0.1 --attn-dropout 0.1" + extra;
    const std::string tag = pos + (extra.empty() ? "" : "_bf16");
    const std::string straight = path("straight_" + tag);
    const std::string split = path("split_" + tag);
    auto r = run_cli("train --data " + data() + " --out " + straight + kTiny + p + " --steps 20",
                     path("a.err"));
    ASSERT_EQ(r.code, 0) << r.err;
    r = run_cli("train --data " + data() + " --out " + split + kTiny + p + " --steps 20" +
                    " --time-limit 0 --save-every 10",
                path("b.err"));
    ASSERT_EQ(r.code, 0) << r.err;
    // Throw away the end of the split run and continue from its step-10 checkpoint.
    fs::remove(split + "/ckpt-000000020.safetensors");
    ASSERT_TRUE(fs::exists(split + "/ckpt-000000010.safetensors"));
    r = run_cli("train --resume " + split, path("c.err"));  // to the run's own 20 steps
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.err.find("note: --steps"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("resumed"), std::string::npos) << r.err;
    expect_identical(straight + "/ckpt-000000020.safetensors",
                     split + "/ckpt-000000020.safetensors");
  }
}

// A --steps other than the run's own changes the run on purpose: one line names both numbers
// and the step the schedule changes from, and the checkpoint records the new length.
TEST_F(TrainCli, ResumeWithOtherStepsSaysSoInOneLine) {
  const std::string run = path("extend");
  auto r = run_cli("train --data " + data() + " --out " + run + kTiny + " --steps 4",
                   path("e1.err"));
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_cli("train --resume " + run + " --steps 6", path("e2.err"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("note: --steps 6 extends the run, recorded with 4 steps: its "
                       "learning-rate schedule (cosine to step 6) changes from step 5 on"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(read_checkpoint(run).step, 6);
  EXPECT_EQ(read_checkpoint(run).train.at("steps"), 6);
  r = run_cli("train --resume " + run + " --steps 5", path("e3.err"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("note: --steps 5 is not past the checkpoint's step 6: nothing to train"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(read_checkpoint(run).step, 6);
}

// The time limit stops every rank at one step with a validation and a checkpoint of it, and
// says so (before, its flag was read from a bool and the stop was reported as an interrupt).
TEST_F(TrainCli, TimeLimitStopsWithValidationAndACheckpoint) {
  const std::string run = path("timed");
  const auto r = run_cli("train --data " + data() + " --out " + run + kTiny +
                             " --steps 1000000 --eval-every 0 --time-limit 0.005",
                         path("tl.err"));
  ASSERT_EQ(r.code, 0) << r.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.err, m, std::regex("time limit reached at step (\\d+); saved")))
      << r.err;
  const int64_t step = std::stoll(m[1]);
  EXPECT_NE(r.err.find("step " + std::string(6 - std::min<size_t>(6, m[1].length()), ' ') +
                       std::string(m[1]) + " | val loss"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(read_checkpoint(run).step, step);
}

TEST_F(TrainCli, CheckpointHoldsTheRunState) {
  const std::string run = path("state");
  auto r = run_cli("train --data " + data() + " --out " + run + kTiny + " --steps 3",
                   path("s.err"));
  ASSERT_EQ(r.code, 0) << r.err;
  const Checkpoint ck = read_checkpoint(run);
  EXPECT_EQ(ck.step, 3);
  EXPECT_EQ(ck.config.heads, 4);
  EXPECT_EQ(ck.train.at("seed").get<int>(), 5);
  EXPECT_TRUE(ck.st.has("adam.m.wte"));
  EXPECT_TRUE(ck.st.has("adam.v.h.1.mlp.fc.w"));
  // The progress line has step, loss, learning rate, tokens/s and ETA.
  for (const char* s : {"step", "loss", "lr", "tok/s", "ETA", "val loss"})
    EXPECT_NE(r.err.find(s), std::string::npos) << s << " missing from: " << r.err;
}

// A kill after the final checkpoint's rename and before the clean-up that follows it leaves a
// checkpoint past --keep and a dead writer's temporary; the resume that finds the run complete
// saves nothing, so it has to tidy the folder itself.
TEST_F(TrainCli, ResumeOfACompleteRunTidiesTheFolder) {
  const std::string run = path("complete");
  auto r = run_cli("train --data " + data() + " --out " + run + kTiny +
                       " --steps 3 --save-every 1 --keep 2",
                   path("t1.err"));
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string ck = run + "/ckpt-000000003.safetensors";
  ASSERT_FALSE(fs::exists(run + "/ckpt-000000001.safetensors"));
  fs::copy_file(ck, run + "/ckpt-000000001.safetensors");  // one past --keep 2
  const pid_t dead = ::fork();  // a pid no process has once it is reaped
  if (dead == 0) ::_exit(0);
  ASSERT_GT(dead, 0);
  ASSERT_EQ(::waitpid(dead, nullptr, 0), dead);
  const std::string temp = ck + ".tmp-" + std::to_string(dead) + "-0";
  fs::copy_file(ck, temp);
  r = run_cli("train --resume " + run + " --steps 3 --keep 2", path("t2.err"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_FALSE(fs::exists(run + "/ckpt-000000001.safetensors"));
  EXPECT_TRUE(fs::exists(run + "/ckpt-000000002.safetensors"));
  EXPECT_TRUE(fs::exists(ck));
}

TEST_F(TrainCli, SigintSavesACheckpointAndExitsCleanly) {
  const std::string run = path("sigint");
  const std::string cmd =
      "bash -c '" + std::string(ALIBI_CLI) + " train --data " + data() + " --out " + run + kTiny +
      " --steps 100000 --save-every 0 2>" + path("int.err") +
      " & pid=$!; sleep 3; kill -INT $pid; wait $pid; echo $? > " + path("int.code") + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream f(path("int.code"));
  int code = -1;
  f >> code;
  EXPECT_EQ(code, 0);
  const Checkpoint ck = read_checkpoint(run);
  EXPECT_GT(ck.step, 0);
  EXPECT_LT(ck.step, 100000);
}


TEST_F(TrainCli, BadCorpusIsRejected) {
  const std::string missing = path("no_such_file.txt");
  expect_cli_error(run_cli("prepare --input " + missing + " --out " + path("o1"), path("e1")),
                     missing);
  test::write_text(path("empty.txt"), "");
  expect_cli_error(
      run_cli("prepare --input " + path("empty.txt") + " --out " + path("o2"), path("e2")),
      "empty.txt");
  test::write_text(path("binary.txt"), std::string("abc\0\x01\x02 def", 10));
  expect_cli_error(
      run_cli("prepare --input " + path("binary.txt") + " --out " + path("o3"), path("e3")),
      "binary.txt");
  for (const char* o : {"o1", "o2", "o3"}) EXPECT_FALSE(fs::exists(path(o))) << o;
}

TEST_F(TrainCli, CorpusShorterThanAWindowIsRejected) {
  expect_cli_error(run_cli("train --data " + data() + " --out " + path("short") + kTiny +
                                 " --seq-len 1000000 --steps 1",
                             path("e4")),
                     "--seq-len");
  EXPECT_FALSE(fs::exists(path("short")));
}

TEST_F(TrainCli, BadModelFlagsAreRejected) {
  expect_cli_error(run_cli("train --data " + data() + " --out " + path("bad1") + kTiny +
                                 " --d-model 30 --steps 1",
                             path("e5")),
                     "--d-model 30");
  expect_cli_error(run_cli("train --data " + data() + " --out " + path("bad2") + kTiny +
                                 " --pos wavelet --steps 1",
                             path("e6")),
                     "wavelet");
  EXPECT_FALSE(fs::exists(path("bad1")));
  EXPECT_FALSE(fs::exists(path("bad2")));
}

TEST_F(TrainCli, TruncatedOrForeignCheckpointIsRejected) {
  const std::string run = path("trunc");
  ASSERT_EQ(run_cli("train --data " + data() + " --out " + run + kTiny +
                        " --steps 2 --save-every 1",
                    path("t.err")).code, 0);
  const std::string ck = run + "/ckpt-000000002.safetensors";
  fs::resize_file(ck, fs::file_size(ck) / 2);
  expect_cli_error(run_cli("train --resume " + ck + " --steps 4", path("e7")), ck);

  Safetensors foreign;
  const float w[2] = {1, 2};
  foreign.add_f32("weight", {2}, w);
  foreign.write_atomic(path("foreign.safetensors"));
  expect_cli_error(
      run_cli("train --resume " + path("foreign.safetensors") + " --steps 4", path("e8")),
      "foreign.safetensors");
  // A checkpoint that says its tokenizer is SentencePiece but lacks the model bytes.
  Safetensors no_model = Safetensors::read(run + "/ckpt-000000001.safetensors");
  no_model.metadata["tokenizer"] = R"({"kind":"bpe","vocab":256,"fingerprint":"0"})";
  no_model.write_atomic(path("no_model.safetensors"));
  const auto r = run_cli("train --resume " + path("no_model.safetensors") + " --steps 4",
                         path("e_nomodel"));
  expect_cli_error(r, "no_model.safetensors");
  EXPECT_NE(r.err.find("'tokenizer.model'"), std::string::npos) << r.err;
  test::write_text(path("text.safetensors"), "hello, not a checkpoint");
  expect_cli_error(
      run_cli("train --resume " + path("text.safetensors") + " --steps 4", path("e9")),
      "text.safetensors");
}

TEST_F(TrainCli, ResumeWithContradictingFlagsIsRejected) {
  const std::string run = path("contra");
  ASSERT_EQ(run_cli("train --data " + data() + " --out " + run + kTiny + " --steps 2",
                    path("c.err")).code, 0);
  expect_cli_error(run_cli("train --resume " + run + " --heads 8 --steps 4", path("e10")),
                     "--heads");
  expect_cli_error(run_cli("train --resume " + run + " --pos rotary --steps 4", path("e11")),
                     "--pos");
  // Flags that agree with the checkpoint are fine.
  EXPECT_EQ(run_cli("train --resume " + run + " --heads 4 --steps 3", path("e12")).code, 0);
}

TEST_F(TrainCli, InitSchemeIsAFlagRecordedInTheCheckpoint) {
  expect_cli_error(run_cli("train --data " + data() + " --out " + path("i0") + kTiny +
                             " --steps 1 --init xavier", path("i0.err")), "--init 'xavier'");
  EXPECT_FALSE(fs::exists(path("i0")));
  expect_cli_error(run_cli("train --data " + data() + " --out " + path("i1") + kTiny +
                             " --steps 1 --pos t5 --t5-lr-scale -1", path("i1.err")),
                     "--t5-lr-scale -1");
  const std::string run = path("init");
  ASSERT_EQ(run_cli("train --data " + data() + " --out " + run + kTiny + " --steps 2 --init gpt2",
                    path("i2.err")).code, 0);
  EXPECT_EQ(read_checkpoint(run).config.init, InitScheme::gpt2);
  expect_cli_error(run_cli("train --resume " + run + " --init fairseq --steps 3", path("i3")),
                     "--init");
  EXPECT_EQ(run_cli("train --resume " + run + " --steps 3", path("i4")).code, 0);
  EXPECT_EQ(read_checkpoint(run).config.init, InitScheme::gpt2);
}

// BLOOM's and MPT's architecture options train, are recorded and resume bit-identically.
TEST_F(TrainCli, ArchitectureOptionsAreFlagsRecordedInTheCheckpoint) {
  const std::string arch = " --linear-bias false --ln-bias false --ln-eps 1e-3 --gelu erf"
                           " --embed-scale false --embed-ln true --alibi-bias-max 4"
                           " --tied-head false";
  expect_cli_error(run_cli("train --data " + data() + " --out " + path("a0") + kTiny +
                             " --steps 1 --gelu sigmoid", path("a0.err")), "--gelu 'sigmoid'");
  expect_cli_error(run_cli("train --data " + data() + " --out " + path("a1") + kTiny +
                             " --steps 1 --ln-eps 0", path("a1.err")), "--ln-eps 0");
  EXPECT_FALSE(fs::exists(path("a0")) || fs::exists(path("a1")));
  const std::string run = path("arch"), whole = path("arch-whole");
  ASSERT_EQ(run_cli("train --data " + data() + " --out " + run + kTiny + arch + " --steps 2",
                    path("a2.err")).code, 0);
  const Checkpoint ck = read_checkpoint(run);
  EXPECT_FALSE(ck.config.linear_bias);
  EXPECT_FALSE(ck.config.ln_bias);
  EXPECT_EQ(ck.config.ln_eps, 1e-3f);
  EXPECT_EQ(ck.config.gelu, Gelu::erf);
  EXPECT_FALSE(ck.config.embed_scale);
  EXPECT_TRUE(ck.config.embed_ln);
  EXPECT_EQ(ck.config.alibi_bias_max, 4.0f);
  EXPECT_FALSE(ck.config.tied_head);
  expect_cli_error(run_cli("train --resume " + run + " --gelu tanh --steps 3", path("a3")),
                     "--gelu");
  ASSERT_EQ(run_cli("train --resume " + run + " --steps 4", path("a4")).code, 0);
  ASSERT_EQ(run_cli("train --data " + data() + " --out " + whole + kTiny + arch + " --steps 4",
                    path("a5.err")).code, 0);
  expect_identical(run + "/ckpt-000000004.safetensors", whole + "/ckpt-000000004.safetensors");
}

TEST_F(TrainCli, NonFiniteLossStopsAndKeepsTheLastGoodCheckpoint) {
  const std::string run = path("nan");
  // A learning rate of 1e30 turns the weights into infinities after one AdamW step.
  auto r = run_cli("train --data " + data() + " --out " + run + kTiny +
                       " --lr 1e30 --warmup 1 --steps 5 --save-every 1",
                   path("e13"));
  expect_cli_error(r, "step 2");
  const Checkpoint ck = read_checkpoint(run);
  EXPECT_EQ(ck.step, 1);
}

}  // namespace
}  // namespace alibi
