#pragma once
// Checkpoints: one safetensors file per save, RUN/ckpt-STEP.safetensors, holding the weights
// under their docs/model.md names (weight matrices F32, or BF16/F16 in an inference checkpoint:
// ParamLayout's `matrix` tensors; everything else F32), the AdamW moments (adam.m.NAME,
// adam.v.NAME), the tokenizer (tokenizer.model, U8: the SentencePiece model or tokenizer.json) and
// in the metadata: format, config, train (the run's hyper-parameters, seed included), step and
// tokenizer. The data order and dropout masks are pure functions of (seed, step), so these are the
// whole state of a run.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "data/tokenizer.h"
#include "model/config.h"
#include "model/params.h"

namespace alibi {

struct Checkpoint {
  std::string path;  // the file it was read from
  ModelConfig config;
  nlohmann::json train;  // hyper-parameters of the run that wrote it
  int64_t step = 0;      // optimizer steps completed
  Tokenizer tokenizer;
  Safetensors st;
  WeightType weights = WeightType::fp32;  // the type its weight matrices are stored in (wte's)

  // Copies the tensors of `set` (of this config's layout) from names PREFIX + name, widening
  // bf16/f16 matrices to fp32.
  void load_params(ParamSet& set, const std::string& prefix = "") const;
};

// The checkpoints of a run folder (RUN/ckpt-STEP.safetensors), oldest first: the step is
// zero-padded in the name.
std::vector<std::filesystem::path> list_checkpoints(const std::filesystem::path& dir);
// A checkpoint's temporary, as an atomic write leaves it when killed (core/io.h).
bool is_checkpoint_temporary(const std::string& name);

// PATH is a .safetensors file or a run folder (meaning its latest checkpoint), or for
// read_checkpoint a GGUF file (model/gguf_import.h, read in place, not converted). Throws
// UsageError naming the path for a missing, truncated or foreign file.
std::string resolve_checkpoint(const std::string& path);
Checkpoint read_checkpoint(const std::string& path);

// The tokenizer a path names: Tokenizer::from_path's files and folders, or the tokenizer a run
// folder, checkpoint or GGUF file carries. UsageError naming the path for anything else.
Tokenizer load_tokenizer(const std::string& path);

// Writes RUN/ckpt-STEP.safetensors atomically and deletes all but the newest `keep`.
// m and v may be null (weights only). `matrices`: the type the weight matrices are stored in,
// rounded to nearest even from fp32, or quantized as kernels/quant.h's quantize() (bf16/f16 or a
// block format, for inference; a run resumed from it would lose its fp32 master weights, so
// training writes fp32). Returns the path written.
// The sets are written from where they are when the backend's memory is the host's; otherwise
// each is downloaded first, and this many bytes of host memory hold the copies while it writes.
uint64_t checkpoint_copy_bytes(uint64_t floats, const Backend& backend, int sets);
std::string write_checkpoint(const std::string& run_dir, const ModelConfig& cfg,
                             const nlohmann::json& train, int64_t step, const Tokenizer& tok,
                             const ParamSet& params, const ParamSet* m, const ParamSet* v,
                             int keep, WeightType matrices = WeightType::fp32);

// The same from host memory: PARAMS (and the moments M and V, or null) in LAYOUT's order. The
// fp32 tensors are written straight from these arrays and narrowed ones one at a time as they
// are written, so the peak is the arrays and one narrowed matrix.
std::string write_checkpoint_host(const std::string& run_dir, const ModelConfig& cfg,
                                  const nlohmann::json& train, int64_t step, const Tokenizer& tok,
                                  const ParamLayout& layout, const float* params, const float* m,
                                  const float* v, int keep, WeightType matrices = WeightType::fp32);

// Rows [r0, r0 + n) of tensor t (shape[0] rows) as fp32 into dst.
using ReadRows = std::function<void(const TensorInfo& t, int64_t r0, int64_t n, float* dst)>;
// The same, weights only, read from READ one tensor at a time as the file is written (`alibi
// import` streams a Hugging Face folder this way): the peak is one tensor in its stored type.
std::string write_checkpoint_rows(const std::string& run_dir, const ModelConfig& cfg,
                                  const nlohmann::json& train, int64_t step, const Tokenizer& tok,
                                  const ParamLayout& layout, const ReadRows& read, int keep,
                                  WeightType matrices = WeightType::fp32);

// A tensor as a checkpoint stores it: its dtype (a matrix's may be any WeightType's, vectors
// "F32") and its bytes, in the caller's memory until the write returns.
struct StoredTensor {
  std::string dtype;
  const void* data;
  size_t bytes;
};
// The same, weights only, each tensor as GET gives it (`alibi import` of a GGUF file keeps its
// blocks as they are). GET is called once per tensor, in LAYOUT's order, as the file is written.
std::string write_checkpoint_stored(const std::string& run_dir, const ModelConfig& cfg,
                                    const nlohmann::json& train, int64_t step, const Tokenizer& tok,
                                    const ParamLayout& layout,
                                    const std::function<StoredTensor(const TensorInfo&)>& get,
                                    int keep);

// Deletes all but the newest `keep` checkpoints of RUN and the temporaries of writers that no
// longer run. write_checkpoint calls it after each save; a resume that finds its run complete
// calls it too, since a kill between the final save and its clean-up leaves nothing else to.
void tidy_run_folder(const std::string& run_dir, int keep);

}  // namespace alibi
