// alibi models into Hugging Face folders (model/hf_export.h, docs/hf.md): the machinery, which
// walks a family's description (model/hf/family.h) and names no family.
#include "model/hf_export.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/io.h"
#include "core/safetensors.h"
#include "model/params.h"

namespace fs = std::filesystem;

namespace alibi {

const hf::Family& hf_family(const ModelConfig& c, const std::string& want) {
  if (!want.empty()) {
    const hf::Family& f = hf::family_named(want, "--family");
    const std::string why = hf::export_mismatch(f, c);
    if (!why.empty()) usage_error("--family ", want, ": ", why, " (docs/hf.md)");
    return f;
  }
  std::string titles, whys;
  for (const hf::Family* f : hf::families()) {
    const std::string why = hf::export_mismatch(*f, c);
    if (why.empty()) return *f;
    titles += str_cat(titles.empty() ? "" : " nor ", f->title);
    whys += str_cat(whys.empty() ? "" : "; ", why);
  }
  usage_error("the model is neither ", titles, ": ", whys,
              " (train with a family's options: docs/hf.md)");
}

void export_hf(const ModelConfig& c, const std::vector<float>& params, const Tokenizer& tok,
               const hf::Family& family, int max_seq_len, const std::string& dir) {
  ALIBI_CHECK(hf::export_mismatch(family, c).empty(), family.name);
  std::error_code ec;
  if (fs::exists(dir, ec)) usage_error("--to-hf '", dir, "' already exists; expected a new folder");
  const ParamLayout l = make_param_layout(c);
  ALIBI_CHECK(params.size() == l.total);
  Safetensors st;
  st.metadata["format"] = "pt";
  for (const hf::Mapped& m : hf::map_tensors(family, l, c.layers)) {
    const TensorInfo& t = *m.ours;
    // The base model's tensors carry transformers' base_model_prefix; the head does not.
    const std::string name = m.theirs == "lm_head.weight" ? m.theirs : "transformer." + m.theirs;
    const float* ours = params.data() + t.offset;
    if (m.rows == hf::Rows::same) {
      st.add_f32(name, t.shape, ours);
      continue;
    }
    const int64_t rows = t.shape.at(0), cols = int64_t(t.numel) / rows;
    std::vector<float> theirs(t.numel);
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(theirs.data() + hf::their_row(m.rows, r, rows, c.head_size()) * cols,
                  ours + r * cols, size_t(cols) * 4);
    st.add_f32(name, t.shape, theirs.data());
  }

  // All or nothing: the files go into a sibling folder, renamed into place at the end.
  const std::string tmp = dir + ".tmp-" + std::to_string(::getpid());
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp);
  try {
    write_file_atomic(tmp + "/config.json",
                      {hf::write_config(family, c, max_seq_len).dump(2), "\n"});
    st.write_atomic(tmp + "/model.safetensors");
    if (tok.kind() == TokenizerKind::hf)
      write_file_atomic(tmp + "/tokenizer.json", {tok.model_bytes()});
    fs::rename(tmp, dir);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace alibi
