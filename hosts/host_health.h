// When a render host counts as down, back, and a warm standby again; which one is played.
// Decided here once, by sustaind on the audio host (hosts/audio_host.cpp), from what the
// host output stage counts (shm/layout.h, RenderHostSlot). docs/hosts.md has the table.
#pragma once

#include <cstdint>

#include "shm/layout.h"

namespace sustain {

/// Cycles the output stage played without a host's block, in a row, after which the host is
/// down (128 ms at 64 frames / 48 kHz). Only cycles the stage ran count, so a stall of the
/// audio host itself (the dummy driver or the machine late by a hundred milliseconds, which
/// happens here under load) is nobody's fault. The stage needs no verdict to cover a missing
/// block (it plays the other host's block of the same number in that very cycle), so the
/// verdict can wait long enough to tell a host that is gone from netjack2 skipping a few
/// cycles; it moves the preference and shows in the status.
inline constexpr uint64_t kHostDownCycles = 96;
/// Blocks delivered since the host joined, and in a row labelled in step, after which it is
/// a warm standby. A late block does not break the run (it is counted:
/// RenderHostSlot::lateBlocks); a block its host labels not in step does.
inline constexpr uint64_t kHostWarmBlocks = 16;

struct HostObservation {
    HostState state = HostState::Empty;
    bool connected = false;
    uint64_t deliveredSinceJoin = 0;  // RenderHostSlot::blocks now minus at its join
    uint64_t missingRun = 0;          // RenderHostSlot::missingRun
    uint64_t inStepRun = 0;           // RenderHostSlot::inStepRun
};

/// The host's next state. Thread: any.
constexpr HostState judgeHost(const HostObservation& seen) {
    if (seen.state == HostState::Empty) return HostState::Empty;
    if (!seen.connected) return HostState::Down;
    const bool warmRun = seen.deliveredSinceJoin >= kHostWarmBlocks && seen.inStepRun >= kHostWarmBlocks;
    if (seen.deliveredSinceJoin < kHostWarmBlocks) return seen.state == HostState::Down ? HostState::Down : HostState::Joining;
    if (seen.missingRun > kHostDownCycles) return HostState::Down;
    if (seen.state == HostState::InStep && seen.inStepRun > 0) return HostState::InStep;
    return warmRun ? HostState::InStep : HostState::Joining;
}

/// The row to prefer: the current one while it is in step, else another in step, else the
/// current one (nothing better). Thread: any.
constexpr uint32_t choosePreferred(uint32_t current, const HostState (&states)[kRenderHostSlots]) {
    if (states[current % kRenderHostSlots] == HostState::InStep) return current % kRenderHostSlots;
    for (uint32_t row = 0; row < kRenderHostSlots; ++row)
        if (states[row] == HostState::InStep) return row;
    return current % kRenderHostSlots;
}

}  // namespace sustain
