// When a render host counts as down, back, and a warm standby again; which one is played.
// Decided here once, by sustaind on the audio host (hosts/audio_host.cpp), from what the
// host output stage counts (shm/layout.h, RenderHostSlot). docs/hosts.md has the table.
#pragma once

#include <cstdint>

#include "shm/layout.h"

namespace sustain {

/// Cycles without a block from a host that delivered before, after which it is down (128 ms
/// at 64 frames / 48 kHz). The output stage needs no verdict to cover a missing block (it
/// plays the other host's block of the same number in that very cycle), so the verdict can
/// wait long enough to tell a host that is gone from netjack2 skipping a few of its cycles
/// on a loaded network or machine, which happens every few seconds here (a verdict after
/// 12 cycles moved the preference for nothing); it moves the preference and shows in the
/// status.
inline constexpr uint64_t kHostDownCycles = 96;
/// Blocks in a row labelled in step after which a host is a warm standby. A late block
/// does not break the run (it is counted: RenderHostSlot::lateBlocks); a block its host
/// labels not in step does.
inline constexpr uint64_t kHostWarmBlocks = 16;

struct HostObservation {
    HostState state = HostState::Empty;
    bool connected = false;
    uint64_t cycle = 0;             // the stage's cycle now
    uint64_t lastArrivalCycle = 0;  // RenderHostSlot::lastArrivalCycle (cycle + 1; 0: never)
    uint64_t inStepRun = 0;
};

/// The host's next state. Thread: any.
constexpr HostState judgeHost(const HostObservation& seen) {
    if (seen.state == HostState::Empty) return HostState::Empty;
    if (!seen.connected) return HostState::Down;
    const bool delivering = seen.lastArrivalCycle != 0 && seen.cycle + 1 - seen.lastArrivalCycle <= kHostDownCycles;
    if (!delivering) return seen.state == HostState::Joining ? HostState::Joining : HostState::Down;
    if (seen.state == HostState::InStep && seen.inStepRun > 0) return HostState::InStep;
    return seen.inStepRun >= kHostWarmBlocks ? HostState::InStep : HostState::Joining;
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
