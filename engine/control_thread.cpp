#include "engine/control_thread.h"

#include "engine/rt/synth.h"
#include "shm/clock.h"

namespace sustain {

CommandForwarder::CommandForwarder(Segment& segment, uint32_t slot, CallbackQueue& queue)
    : segment_(segment), metrics_(segment.workers[slot]), ring_(commandRing(segment, slot)), queue_(queue) {}

bool CommandForwarder::drainOnce() {
    Command command;
    const uint64_t nowNs = monotonicNs();
    // Bounded: at most one ring's worth per pass, so a flood cannot starve the rest of the loop.
    for (uint32_t taken = 0; taken < kCommandRingCapacity && ring_.tryPop(command); ++taken) {
        metrics_.drained.fetch_add(1, std::memory_order_relaxed);
        const uint64_t waitedUs = nowNs > command.pushNs ? (nowNs - command.pushNs) / 1000 : 0;
        metrics_.drainBins[waitedUs < kDrainBins ? waitedUs : kDrainBins].fetch_add(1, std::memory_order_relaxed);
        if (command.param >= kParamCount) continue;  // cannot happen: validated by the OSC thread
        if (command.sequence <= snapshot_[command.param]) {
            // Already part of the state this worker started from.
            metrics_.staleEpochSkips.fetch_add(1, std::memory_order_relaxed);
            continue;
        }
        if (isPending_[command.param]) {
            metrics_.controlCoalesced.fetch_add(1, std::memory_order_relaxed);
        } else {
            isPending_[command.param] = true;
            order_[pendingCount_++] = command.param;
        }
        pending_[command.param] = command;
    }
    uint32_t sent = 0;
    while (sent < pendingCount_ && queue_.try_enqueue(pending_[order_[sent]])) {
        isPending_[order_[sent]] = false;
        ++sent;
    }
    if (sent > 0) {
        for (uint32_t i = sent; i < pendingCount_; ++i) order_[i - sent] = order_[i];
        pendingCount_ -= sent;
    }
    return pendingCount_ != 0;
}

std::array<uint64_t, kParamCount> loadStateTable(const Segment& segment, RenderState& state) {
    std::array<uint64_t, kParamCount> versions{};
    for (uint32_t param = 0; param < kParamCount; ++param) {
        const ParamEntry& entry = segment.params.entries[param];
        versions[param] = entry.version.load(std::memory_order_acquire);
        applyParam(state, param, entry.value.load(std::memory_order_relaxed), 0);
    }
    return versions;
}

}  // namespace sustain
