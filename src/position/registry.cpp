// The registry of position methods: one line per method, in the order help texts and
// `alibi bench` list them. Each factory is defined in the method's own file.
#include "core/error.h"
#include "position/position.h"

namespace alibi {

std::unique_ptr<PositionMethod> make_alibi();
std::unique_ptr<PositionMethod> make_sinusoidal();
std::unique_ptr<PositionMethod> make_rotary();
std::unique_ptr<PositionMethod> make_xpos();
std::unique_ptr<PositionMethod> make_t5();
std::unique_ptr<PositionMethod> make_learned();
std::unique_ptr<PositionMethod> make_none();
std::unique_ptr<PositionMethod> make_kerple_log();
std::unique_ptr<PositionMethod> make_kerple_power();
std::unique_ptr<PositionMethod> make_sandwich();
std::unique_ptr<PositionMethod> make_fire();

namespace {

struct Entry {
  PosKind kind;
  const char* name;
  std::unique_ptr<PositionMethod> (*make)();
};

constexpr Entry kMethods[] = {
    {PosKind::alibi, "alibi", make_alibi},
    {PosKind::sinusoidal, "sinusoidal", make_sinusoidal},
    {PosKind::rotary, "rotary", make_rotary},
    {PosKind::xpos, "xpos", make_xpos},
    {PosKind::t5, "t5", make_t5},
    {PosKind::learned, "learned", make_learned},
    {PosKind::none, "none", make_none},
    {PosKind::kerple_log, "kerple-log", make_kerple_log},
    {PosKind::kerple_power, "kerple-power", make_kerple_power},
    {PosKind::sandwich, "sandwich", make_sandwich},
    {PosKind::fire, "fire", make_fire},
};

const Entry& entry(PosKind kind) {
  for (const Entry& e : kMethods)
    if (e.kind == kind) return e;
  ALIBI_CHECK(false, "position method ", int(kind), " is not registered");
  return kMethods[0];
}

}  // namespace

PosKind parse_pos(const std::string& name, const std::string& flag) {
  for (const Entry& e : kMethods)
    if (name == e.name) return e.kind;
  usage_error(flag, " '", name, "' is not a position method; expected one of ", pos_names());
}

const char* pos_name(PosKind kind) { return entry(kind).name; }

std::string pos_names() {
  std::string s;
  for (const Entry& e : kMethods) s += std::string(s.empty() ? "" : "|") + e.name;
  return s;
}

std::vector<PosKind> all_positions() {
  std::vector<PosKind> v;
  for (const Entry& e : kMethods) v.push_back(e.kind);
  return v;
}

std::unique_ptr<PositionMethod> make_position_method(PosKind kind) { return entry(kind).make(); }

const PositionMethod& position_method(PosKind kind) {
  // One unbound instance per method, made on first use and kept for the process.
  static const auto shared = [] {
    std::vector<std::unique_ptr<PositionMethod>> v;
    for (const Entry& e : kMethods) v.push_back(e.make());
    return v;
  }();
  return *shared[size_t(&entry(kind) - kMethods)];
}

}  // namespace alibi
