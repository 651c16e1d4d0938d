#pragma once
// The position methods by name (the registry of src/position/registry.cpp is their one list).
#include <string>
#include <vector>

namespace alibi {

enum class PosKind {
  none, alibi, sinusoidal, learned, rotary, t5, kerple_log, kerple_power, sandwich, fire, xpos
};

// Throws UsageError naming `flag` for an unknown name.
PosKind parse_pos(const std::string& name, const std::string& flag = "--pos");
const char* pos_name(PosKind kind);
std::string pos_names();             // "alibi|sinusoidal|rotary|t5|learned|none|..."
std::vector<PosKind> all_positions();  // in that order

}  // namespace alibi
