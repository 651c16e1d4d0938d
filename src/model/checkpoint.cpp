#include "model/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <vector>

#include "core/error.h"
#include "core/memory_plan.h"
#include "core/half.h"
#include "core/io.h"
#include "position/position.h"
#include "kernels/quant.h"
#include "model/gguf_import.h"

namespace fs = std::filesystem;

namespace alibi {
namespace {

// v2: token embeddings scaled by sqrt(C) (docs/model.md); v1 weights would run differently.
constexpr const char* kFormat = "alibi-checkpoint-v2";
constexpr const char* kPrefix = "ckpt-";
constexpr const char* kSuffix = ".safetensors";

}  // namespace

std::vector<fs::path> list_checkpoints(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.starts_with(kPrefix) && n.ends_with(kSuffix)) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool is_checkpoint_temporary(const std::string& name) {
  return name.starts_with(kPrefix) && name.find(std::string(kSuffix) + ".tmp-") != std::string::npos;
}

std::string resolve_checkpoint(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    auto all = list_checkpoints(path);
    if (all.empty())
      usage_error("run folder '", path, "' holds no checkpoint (", kPrefix, "*", kSuffix, ")");
    return all.back().string();
  }
  if (!fs::exists(path, ec))
    usage_error("checkpoint '", path, "' does not exist; expected a run folder or a ", kSuffix,
                " file");
  return path;
}

Checkpoint read_checkpoint(const std::string& path_or_run) {
  if (is_gguf_file(path_or_run)) return read_gguf_checkpoint(path_or_run);
  Checkpoint ck;
  ck.path = resolve_checkpoint(path_or_run);
  ck.st = Safetensors::read(ck.path);
  const auto& md = ck.st.metadata;
  auto it = md.find("format");
  if (it == md.end() || it->second != kFormat)
    usage_error("checkpoint '", ck.path, "' is not an alibi checkpoint (metadata format is '",
                it == md.end() ? "" : it->second, "', expected '", kFormat, "')");
  try {
    try {
      ck.config = ModelConfig::from_json(nlohmann::json::parse(md.at("config")));
      ck.config.validate();
    } catch (const UsageError& e) {  // these name the config field, not the file
      usage_error("checkpoint '", ck.path, "': ", e.what());
    }
    ck.train = nlohmann::json::parse(md.at("train"));
    ck.step = std::stoll(md.at("step"));
    auto tj = nlohmann::json::parse(md.at("tokenizer"));
    const std::string where = str_cat("tokenizer \"kind\" in checkpoint '", ck.path, "':");
    const TokenizerKind kind = parse_tokenizer_kind(tj.at("kind").get<std::string>(), where);
    if (kind != TokenizerKind::bytes) {
      if (!ck.st.has("tokenizer.model"))
        usage_error("checkpoint '", ck.path, "' has a ", tokenizer_kind_name(kind),
                    " tokenizer but no tensor 'tokenizer.model'; expected its model bytes");
      const StTensor& t = ck.st.at("tokenizer.model");
      ck.tokenizer = Tokenizer::from_model(
          kind, std::string(reinterpret_cast<const char*>(t.bytes()), t.nbytes()),
          str_cat("tokenizer.model in checkpoint '", ck.path, "'"));
    } else {
      ck.tokenizer = Tokenizer::bytes();
    }
  } catch (const UsageError&) {
    throw;
  } catch (const std::exception& e) {
    usage_error("checkpoint '", ck.path, "' has malformed metadata (", e.what(), ")");
  }
  // The layout lists every layer's tensors before any is checked: a config asking for more
  // layers than the file holds tensors would make it far larger than the file.
  if (uint64_t(ck.config.layers) > ck.st.tensors.size())
    usage_error("checkpoint '", ck.path, "' has config layers ", ck.config.layers, " but only ",
                ck.st.tensors.size(), " tensors; expected a checkpoint with every layer's weights");
  // Every parameter must be present with the right shape; this also catches truncation.
  const ParamLayout layout = make_param_layout(ck.config);
  for (const TensorInfo& ti : layout.tensors) {
    if (!ck.st.has(ti.name))
      usage_error("checkpoint '", ck.path, "' lacks tensor '", ti.name, "'");
    const StTensor& t = ck.st.at(ti.name);
    WeightType wt = WeightType::fp32;
    const bool dtype_ok = ti.matrix ? weight_type_of_dtype(t.dtype, wt) : t.dtype == "F32";
    if (!dtype_ok)
      usage_error("checkpoint '", ck.path, "' tensor '", ti.name, "' has dtype ", t.dtype,
                  ti.matrix ? "; expected F32, BF16, F16 or a GGUF block type (" +
                                  supported_ggml_names() + ")"
                            : std::string("; expected F32"));
    if (t.shape != ti.shape)
      usage_error("checkpoint '", ck.path, "' tensor '", ti.name, "' has the wrong shape");
    if (ti.name == "wte") ck.weights = wt;
  }
  position_method(ck.config.pos)
      .check_params(ck.config, [&](const std::string& n) { return ck.st.at(n).f32(); },
                    str_cat("checkpoint '", ck.path, "'"));
  return ck;
}

void Checkpoint::load_params(ParamSet& set, const std::string& prefix) const {
  for (const TensorInfo& ti : set.layout->tensors) {
    const std::string name = prefix + ti.name;
    if (!st.has(name)) usage_error("checkpoint '", path, "' lacks tensor '", name, "'");
    const StTensor& t = st.at(name);
    WeightType wt;
    if (!weight_type_of_dtype(t.dtype, wt) || (wt != WeightType::fp32 && !ti.matrix) ||
        size_t(t.numel()) != ti.numel)
      usage_error("checkpoint '", path, "' tensor '", name, "' has the wrong shape/dtype");
    if (wt == WeightType::fp32) {
      set.upload(ti, t.f32());
    } else {
      std::vector<float> wide(ti.numel);
      if (is_quantized(wt))
        dequantize(wide.data(), t.bytes(), wt, int64_t(ti.numel));
      else
        widen_stored(wide.data(), t.bytes(), ti.numel, wt == WeightType::bf16);
      set.upload(ti, wide.data());
    }
    st.release(t);  // copied: its pages need not stay in memory
  }
}

uint64_t checkpoint_copy_bytes(uint64_t floats, const Backend& backend, int sets) {
  return backend.host_memory() ? 0 : sat_mul(sat_mul(uint64_t(sets), floats), sizeof(float));
}

std::string write_checkpoint(const std::string& run_dir, const ModelConfig& cfg,
                             const nlohmann::json& train, int64_t step, const Tokenizer& tok,
                             const ParamSet& params, const ParamSet* m, const ParamSet* v,
                             int keep, WeightType matrices) {
  const bool copy = checkpoint_copy_bytes(params.layout->total, params.backend(), 1) > 0;
  auto host = [copy](const ParamSet* set, std::vector<float>& buf) -> const float* {
    if (!set) return nullptr;
    if (!copy) return set->data.data();
    buf = set->to_host();
    return buf.data();
  };
  std::vector<float> hp, hm, hv;
  return write_checkpoint_host(run_dir, cfg, train, step, tok, *params.layout, host(&params, hp),
                               host(m, hm), host(v, hv), keep, matrices);
}

namespace {

// A checkpoint's metadata: the format, the config, the run's settings, the step, the tokenizer.
Safetensors checkpoint_header(const ModelConfig& cfg, const nlohmann::json& train, int64_t step,
                              const Tokenizer& tok) {
  Safetensors st;
  st.metadata["format"] = kFormat;
  st.metadata["config"] = cfg.to_json().dump();
  st.metadata["train"] = train.dump();
  st.metadata["step"] = std::to_string(step);
  st.metadata["tokenizer"] =
      nlohmann::json{{"kind", tokenizer_kind_name(tok.kind())},
                     {"vocab", tok.vocab()},
                     {"fingerprint", tok.fingerprint()}}
          .dump();
  return st;
}

// Adds the tokenizer's model, writes RUN/ckpt-STEP.safetensors and tidies the folder.
std::string finish_checkpoint(Safetensors& st, const std::string& run_dir, int64_t step,
                              const Tokenizer& tok, int keep) {
  if (tok.kind() != TokenizerKind::bytes)  // the SentencePiece model, or the tokenizer.json
    st.add_view("tokenizer.model", "U8", {int64_t(tok.model_bytes().size())},
                tok.model_bytes().data(), tok.model_bytes().size());
  char name[64];
  std::snprintf(name, sizeof(name), "%s%09lld%s", kPrefix, static_cast<long long>(step), kSuffix);
  const std::string path = (fs::path(run_dir) / name).string();
  fs::create_directories(run_dir);  // once every tensor is known to fit its dtype
  st.write_atomic(path);
  tidy_run_folder(run_dir, keep);
  return path;
}

// Bytes of matrix `ti` stored in type t; a UsageError where its rows are not whole blocks.
size_t stored_bytes(const TensorInfo& ti, WeightType t) {
  const int64_t rows = ti.shape.empty() ? 1 : ti.shape[0], cols = int64_t(ti.numel) / rows;
  if (ggml_row_bytes(ggml_of(t), cols) < 0)
    usage_error("tensor '", ti.name, "' has rows of ", cols, " elements; ", weight_type_name(t),
                " stores rows of a multiple of ", ggml_of(t).block);
  return weight_row_bytes(t, cols) * size_t(rows);
}

}  // namespace

std::string write_checkpoint_host(const std::string& run_dir, const ModelConfig& cfg,
                                  const nlohmann::json& train, int64_t step, const Tokenizer& tok,
                                  const ParamLayout& layout, const float* params, const float* m,
                                  const float* v, int keep, WeightType matrices) {
  Safetensors st = checkpoint_header(cfg, train, step, tok);
  // fp32 tensors are written from the caller's memory as they are; narrowed ones are made one at
  // a time as the file is written.
  auto add_set = [&](const float* host, const std::string& prefix) {
    for (const TensorInfo& ti : layout.tensors) {
      const float* x = host + ti.offset;
      if (!ti.matrix || matrices == WeightType::fp32 || !prefix.empty()) {
        st.add_view(prefix + ti.name, "F32", ti.shape, x, ti.numel * sizeof(float));
        continue;
      }
      st.add_lazy(ti.name, weight_dtype(matrices), ti.shape, stored_bytes(ti, matrices),
                  [=](uint8_t* dst) { quantize(dst, x, matrices, int64_t(ti.numel)); });
    }
  };
  add_set(params, "");
  if (m) add_set(m, "adam.m.");
  if (v) add_set(v, "adam.v.");
  return finish_checkpoint(st, run_dir, step, tok, keep);
}

std::string write_checkpoint_rows(const std::string& run_dir, const ModelConfig& cfg,
                                  const nlohmann::json& train, int64_t step, const Tokenizer& tok,
                                  const ParamLayout& layout, const ReadRows& read, int keep,
                                  WeightType matrices) {
  Safetensors st = checkpoint_header(cfg, train, step, tok);
  for (const TensorInfo& ti : layout.tensors) {
    const int64_t rows = ti.shape.empty() ? 1 : ti.shape[0], cols = int64_t(ti.numel) / rows;
    const WeightType wt = ti.matrix ? matrices : WeightType::fp32;
    const size_t row_bytes = stored_bytes(ti, wt) / size_t(rows);
    st.add_lazy(
        ti.name, weight_dtype(wt), ti.shape, row_bytes * size_t(rows),
        [&read, &ti, rows, cols, wt, row_bytes](uint8_t* dst) {
          if (wt == WeightType::fp32) return read(ti, 0, rows, reinterpret_cast<float*>(dst));
          // Narrowed a block of rows at a time: no fp32 copy of the whole tensor.
          const int64_t block =
              std::max<int64_t>(1, (int64_t(1) << 20) / std::max<int64_t>(cols, 1));
          std::vector<float> buf(size_t(std::min(block, rows) * cols));
          for (int64_t r = 0; r < rows; r += block) {
            const int64_t n = std::min(block, rows - r);
            read(ti, r, n, buf.data());
            quantize(dst + size_t(r) * row_bytes, buf.data(), wt, n * cols);
          }
        });
  }
  return finish_checkpoint(st, run_dir, step, tok, keep);
}

std::string write_checkpoint_stored(const std::string& run_dir, const ModelConfig& cfg,
                                    const nlohmann::json& train, int64_t step, const Tokenizer& tok,
                                    const ParamLayout& layout,
                                    const std::function<StoredTensor(const TensorInfo&)>& get,
                                    int keep) {
  Safetensors st = checkpoint_header(cfg, train, step, tok);
  for (const TensorInfo& ti : layout.tensors) {
    const StoredTensor t = get(ti);
    st.add_view(ti.name, t.dtype, ti.shape, t.data, t.bytes);
  }
  return finish_checkpoint(st, run_dir, step, tok, keep);
}

void tidy_run_folder(const std::string& run_dir, int keep) {
  auto all = list_checkpoints(run_dir);
  for (size_t i = 0; i + size_t(keep) < all.size(); ++i) fs::remove(all[i]);
  // A run killed inside a save (SIGKILL, power loss) left a partial temporary beside the
  // checkpoints; the resumed run's first save removes it.
  remove_dead_temporaries(run_dir);
}

Tokenizer load_tokenizer(const std::string& path) {
  if (is_gguf_file(path)) return read_gguf_checkpoint(path).tokenizer;
  if (auto t = Tokenizer::from_path(path)) return *t;
  return read_checkpoint(path).tokenizer;
}

}  // namespace alibi
