#pragma once
// The GGUF goldens of tests/golden/gguf/ (tests/ref/make_gguf_models.py,
// tests/ref/make_gguf_bos_golden.py) and variants of them, for test_gguf_import.cpp and
// test_gguf_special_tokens.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli.h"
#include "core/gguf.h"

namespace alibi::test {

inline const std::string kDir = std::string(ALIBI_SOURCE_DIR) + "/tests/golden/gguf/";

// bloom.json, mpt.json or bloom-bos.json (by its name without .json).
inline const nlohmann::json& golden(const std::string& family = "bloom") {
  static std::map<std::string, nlohmann::json> of;
  if (!of.count(family)) {
    std::ifstream f(kDir + family + ".json");
    of[family] = nlohmann::json::parse(f);
  }
  return of.at(family);
}

// DIR/text/{train,valid,test}.txt, each bloom.json's text: the folder `prepare --input` reads.
inline std::string golden_splits(const TempDir& dir) {
  std::filesystem::create_directories(dir / "text");
  for (const char* split : {"train", "valid", "test"})
    write_text(dir / ("text/" + std::string(split) + ".txt"),
               golden().at("text").get<std::string>());
  return dir / "text";
}

class GgufVariant : public ::testing::Test {
 protected:
  // bloom-q8_0.gguf written again with `edit` applied to the copy's metadata and tensors.
  using Edit = std::function<void(GgufWriter&, const Gguf&, std::vector<std::string>& skip)>;
  std::string variant(const Edit& edit) {
    const Gguf g = Gguf::read(kDir + "bloom-q8_0.gguf");
    GgufWriter w;
    std::vector<std::string> skip;
    edit(w, g, skip);
    for (const std::string& k : g.keys())
      if (std::find(skip.begin(), skip.end(), k) == skip.end()) w.add(k, g.metadata().at(k));
    for (const GgufTensor& t : g.tensors())
      if (std::find(skip.begin(), skip.end(), t.name) == skip.end())
        w.add_tensor(t.name, t.shape(), *t.type, t.data);
    const std::string path = dir_ / ("v" + std::to_string(++n_) + ".gguf");
    w.write(path);
    return path;
  }
  TempDir dir_{"gguf_variant"};
  int n_ = 0;
};

}  // namespace alibi::test
