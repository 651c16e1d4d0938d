#include "extension_flags.h"

#include "position/position.h"

namespace alibi::cli {
namespace {

const Fields<ModelConfig>& inference_fields() {
  static const Fields<ModelConfig> rows = [] {
    Fields<ModelConfig> f;
    for (const Field<ModelConfig>& m : model_fields())
      if (m.at_inference) f.push_back(m);
    return f;
  }();
  return rows;
}

}  // namespace

ExtensionFlags::ExtensionFlags(CLI::App* app) : flags_(app, inference_fields()) {}

ModelConfig ExtensionFlags::apply(const Checkpoint& ck) const {
  ModelConfig c = ck.config;
  flags_.apply(c);
  position_method(c.pos).fill_defaults(c, ck.train.value("seq_len", 0));
  c.validate();
  return c;
}

nlohmann::json extension_of(const ModelConfig& c) {
  const ModelConfig defaults;
  nlohmann::json j = nlohmann::json::object();
  for (const Field<ModelConfig>& f : inference_fields())
    if (f.applies_to(c) && f.get(c) != f.get(defaults)) j[f.key] = f.get(c);
  if (!j.empty() && c.train_len > 0) j["train_len"] = c.train_len;
  return j;
}

}  // namespace alibi::cli
