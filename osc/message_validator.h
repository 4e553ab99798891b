// Turning one OSC message (already parsed by liblo) into a parameter change, or a reason
// why not. Pure: no I/O, no shared state, so it is tested with a table of messages.
#pragma once

#include <lo/lo.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "osc/param_address.h"

namespace sustain {

struct ValidatedChange {
    RejectReason error = RejectReason::None;
    uint32_t param = 0;
    double value = 0.0;
    std::string why;  // for a rejection: what came in, what was expected (no trailing "; ignored")
};

/// Validates address, argument count, type (i, f or d, coerced to double), finiteness and
/// range. Thread: the OSC thread.  RT-safe: no (builds the message text on rejection).
ValidatedChange validateMessage(std::string_view path, lo_message message, uint32_t voices, uint32_t sampleRate);

}  // namespace sustain
