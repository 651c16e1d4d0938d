// alibi bench: the Table 1 it prints (one row per method and length, ratios to none from the
// same run) and its one-line errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "cli.h"
#include "position/pos_kind.h"

namespace alibi {
namespace {

std::vector<std::string> cells_of(const std::string& row) {  // "| a | b |" -> {"a", "b"}
  std::vector<std::string> out;
  std::stringstream ss(row.substr(1));
  for (std::string c; std::getline(ss, c, '|');) {
    const size_t b = c.find_first_not_of(' '), e = c.find_last_not_of(' ');
    out.push_back(b == std::string::npos ? "" : c.substr(b, e - b + 1));
  }
  return out;
}

TEST(BenchCli, PrintsOneRowPerMethodAndLengthWithRatiosToNone) {
  test::TempDir dir("bench");
  const auto r = test::run_cli(
      "bench --configs tiny --lengths 32,16 --tokens 64 --steps 1 --rounds 1 --threads 1",
      dir / "a.err");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("### tiny: V 256, L 4, C 256, NH 8, F 1024"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("threads 1, fp32 operands"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("ETA"), std::string::npos) << "progress on stderr: " << r.err;
  std::vector<std::vector<std::string>> rows;
  std::stringstream ss(r.out);
  for (std::string line; std::getline(ss, line);)
    if (line.rfind("| ", 0) == 0 && line.find("| method") != 0) rows.push_back(cells_of(line));
  // none first (the baseline of the ratios), then every other method in the registry's order.
  std::vector<std::string> methods = {pos_name(PosKind::none)};
  for (PosKind p : all_positions())
    if (p != PosKind::none) methods.push_back(pos_name(p));
  ASSERT_EQ(rows.size(), 2 * methods.size()) << r.out;
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& c = rows[i];
    ASSERT_EQ(c.size(), 9u) << r.out;
    EXPECT_EQ(c[0], methods[i % methods.size()]);
    EXPECT_EQ(c[1], i < methods.size() ? "16" : "32") << "lengths run in ascending order";
    const auto& none = rows[i / methods.size() * methods.size()];
    const double train = std::stod(c[2]), eval = std::stod(c[4]), rss = std::stod(c[6]);
    EXPECT_GT(train, 0);
    EXPECT_GT(eval, 0);
    EXPECT_GT(rss, 1) << "peak RSS of the cell's process, in MB";
    EXPECT_GT(std::stod(c[8]), 1);
    // Ratios are this row over the none row of the same length (printed to 3 decimals; the
    // tokens/s to 0, so allow their rounding: a/b with a and b each within 0.5 of the printed
    // values is within 0.5 (1 + a/b) / (b - 0.5) of their ratio).
    auto tol = [](double ratio, double base) { return 1e-3 + 0.5 * (1 + ratio) / (base - 0.5); };
    const double rt = train / std::stod(none[2]), re = eval / std::stod(none[4]),
                 rr = rss / std::stod(none[6]);
    EXPECT_NEAR(std::stod(c[3]), rt, tol(rt, std::stod(none[2])));
    EXPECT_NEAR(std::stod(c[5]), re, tol(re, std::stod(none[4])));
    EXPECT_NEAR(std::stod(c[7]), rr, tol(rr, std::stod(none[6])));
    if (c[0] == "none") EXPECT_EQ(c[3] + c[5] + c[7], "1.0001.0001.000");
  }
}

TEST(BenchCli, BadInputIsOneLineNamingTheFlag) {
  test::TempDir dir("bench_bad");
  const std::pair<std::string, std::string> cases[] = {
      {"--configs huge", "--configs 'huge' is not a benchmark config; expected tiny or small"},
      {"--lengths 0", "--lengths '0': 0 is not a usable length"},
      {"--lengths 12x", "--lengths '12x': '12x' is not a number"},
      {"--tokens 0", "--tokens 0 must be at least 1"},
      {"--steps 0", "--steps 0 must be at least 1"},
      {"--rounds 0", "--rounds 0 must be at least 1"},
      {"--dtype fp16", "--dtype 'fp16' is not one of fp32, bf16"},
  };
  for (const auto& [args, msg] : cases) {
    const auto r = test::run_cli("bench " + args, dir / "e.err");
    EXPECT_EQ(r.code, 2) << args;
    EXPECT_NE(r.err.find(msg), std::string::npos) << args << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << ": " << r.err;
    EXPECT_EQ(r.out, "") << args << ": nothing printed before the error";
  }
}

}  // namespace
}  // namespace alibi
