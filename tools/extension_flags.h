#pragma once
// The model's evaluation-time options (context extension: the rows of model_fields() marked
// Field::inference, e.g. --rope-scaling, --alibi-interpolate) as flags of eval and generate,
// set on a checkpoint's model. train takes the same rows with every other model flag.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli_fields.h"
#include "model/checkpoint.h"

namespace alibi::cli {

class ExtensionFlags {
 public:
  explicit ExtensionFlags(CLI::App* app);
  // ck's model with the flags given, the length an extension is relative to filled from the
  // checkpoint's training length where the model has none, checked (UsageError naming the flag).
  ModelConfig apply(const Checkpoint& ck) const;

 private:
  FieldFlags<ModelConfig> flags_;
};

// The extension model c runs, as {key: value} of the rows that apply to it and are set, and the
// train_len it is relative to (an empty object when it runs none): what eval's JSON and
// generate's banner report.
nlohmann::json extension_of(const ModelConfig& c);

}  // namespace alibi::cli
