// The registry of Hugging Face families: one line per family, in the order export tries them
// and help texts list them. Each description is defined in the family's own file.
#include <string>

#include "model/hf/family.h"

namespace alibi::hf {

const Family& mpt();
const Family& bloom();
const Family& falcon();

const std::vector<const Family*>& families() {
  static const std::vector<const Family*> all = {
      &mpt(),
      &bloom(),
      &falcon(),
  };
  return all;
}

const Family& family_named(const std::string& name, const std::string& flag) {
  for (const Family* f : families())
    if (name == f->name) return *f;
  usage_error(flag, " '", name, "' is not a family alibi exports; expected one of ",
              family_names());
}

const Family& family_of(const ConfigJson& c) {
  const json archs = c.get_or("architectures", json::array());
  const std::string arch = archs.is_array() && !archs.empty() && archs.at(0).is_string()
                               ? archs.at(0).get<std::string>()
                               : "";
  const std::string type = arch.empty() ? c.get_or("model_type", std::string()) : "";
  std::string known;
  for (const Family* f : families()) {
    if (arch.empty() ? type == f->model_type : arch == f->architecture) return *f;
    known += str_cat(known.empty() ? "" : " or ", f->architecture);
  }
  c.refuse(c.raw().contains("architectures") ? "architectures" : "model_type",
           "is not supported; expected " + known);
}

std::string family_names() {
  std::string s;
  for (const Family* f : families()) s += std::string(s.empty() ? "" : "|") + f->name;
  return s;
}

}  // namespace alibi::hf
