// Turning a StatusSnapshot into JSON (for scripts) and text (for people).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "tools/status/status_snapshot.h"

namespace sustain {

/// The JSON object of `sustain-status --json --once` (field names as in DESIGN.md).
nlohmann::json statusJson(const StatusSnapshot& snapshot, Health health, const std::string& why);

/// The plain-text report of `sustain-status --once`, one fact per line.
std::string statusText(const StatusSnapshot& snapshot, Health health, const std::string& why);

const char* healthWord(Health health);

}  // namespace sustain
