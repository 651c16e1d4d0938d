#pragma once
// The position methods by name (the registry of src/position/registry.cpp is their one list).
#include <string>
#include <vector>

namespace alibi {

enum class PosKind { none, alibi, sinusoidal, learned, rotary, t5, xpos };

// Throws UsageError naming `flag` for an unknown name.
PosKind parse_pos(const std::string& name, const std::string& flag = "--pos");
const char* pos_name(PosKind kind);
std::string pos_names();             // "alibi|sinusoidal|rotary|xpos|t5|learned|none"
std::vector<PosKind> all_positions();  // in that order

}  // namespace alibi
