#include "engine/control_thread.h"

#include <algorithm>

#include "engine/rt/synth.h"
#include "shm/clock.h"
#include "shm/command_order.h"
#include "shm/fault_point.h"
#include "shm/frame_clock.h"

namespace sustain {

CommandForwarder::CommandForwarder(Segment& segment, uint32_t slot, CallbackQueue& queue,
                                   const std::atomic<uint64_t>& callbackFrame)
    : segment_(segment),
      metrics_(segment.workers[slot]),
      ring_(commandRing(segment, slot)),
      queue_(queue),
      callbackFrame_(callbackFrame) {}

bool CommandForwarder::drainOnce() {
    Command command;
    const uint64_t nowNs = monotonicNs();
    // Bounded: at most one ring's worth per pass, so a flood cannot starve the rest of the loop.
    uint32_t taken = 0;
    for (; taken < kCommandRingCapacity && ring_.tryPop(command); ++taken) {
        metrics_.drained.fetch_add(1, std::memory_order_relaxed);
        SUSTAIN_FAULT_POINT(FaultPoint::ControlDrain);
        const uint64_t waitedUs = nowNs > command.pushNs ? (nowNs - command.pushNs) / 1000 : 0;
        metrics_.drainBins[waitedUs < kDrainBins ? waitedUs : kDrainBins].fetch_add(1, std::memory_order_relaxed);
        if (command.param >= kParamCount) continue;  // cannot happen: validated by the OSC thread
        if ((command.flags & kCommandFlagTimed) != 0) {
            // Not checked against the snapshot: a timed command is not in the table until it is due.
            if (heldCount_ < kTimedHoldCapacity) {
                held_[heldCount_++] = command;
                earliestHeld_ = std::min(earliestHeld_, static_cast<int64_t>(command.dueFrame));
            } else if (!queue_.try_enqueue(command)) {
                metrics_.timedOverflow.fetch_add(1, std::memory_order_relaxed);  // cannot happen: see kTimedHoldCapacity
            }
            continue;
        }
        if (alreadyHeld(command.sequence, snapshot_[command.param])) {
            // Already part of the state this worker started from.
            metrics_.staleEpochSkips.fetch_add(1, std::memory_order_relaxed);
            continue;
        }
        if (isPending_[command.param]) {
            metrics_.controlCoalesced.fetch_add(1, std::memory_order_relaxed);
            if (!isNewer(command.sequence, pending_[command.param].sequence)) continue;
        } else {
            isPending_[command.param] = true;
            order_[pendingCount_++] = command.param;
        }
        pending_[command.param] = command;
    }
    lastTaken_ = taken;
    forwardDueTimed(nowNs);
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

int64_t CommandForwarder::lookaheadFrame(uint64_t nowNs) const {
    const int64_t lookahead = int64_t{kTimedLookaheadBlocks} * segment_.config.framesPerBuffer;
    const uint64_t rendered = callbackFrame_.load(std::memory_order_acquire);
    if (rendered != 0) return static_cast<int64_t>(rendered) + lookahead;
    FrameAnchor anchor{};
    if (!readFrameClock(segment_, anchor)) return INT64_MAX;  // no clock yet: hand everything over
    return frameRenderedAt(anchor, static_cast<int64_t>(nowNs)) + lookahead;
}

void CommandForwarder::forwardDueTimed(uint64_t nowNs) {
    if (heldCount_ == 0) return;
    const int64_t horizon = lookaheadFrame(nowNs);
    if (earliestHeld_ > horizon) return;
    uint32_t kept = 0;
    earliestHeld_ = INT64_MAX;
    for (uint32_t i = 0; i < heldCount_; ++i) {
        const Command& command = held_[i];
        const auto due = static_cast<int64_t>(command.dueFrame);
        // The callback's queue full: keep it, the next pass tries again.
        if (due <= horizon && queue_.try_enqueue(command)) continue;
        held_[kept++] = command;
        earliestHeld_ = std::min(earliestHeld_, due);
    }
    heldCount_ = kept;
}

int CommandForwarder::msUntilNextTimed(int cap) const {
    if (heldCount_ == 0) return cap;
    const int64_t horizon = lookaheadFrame(monotonicNs());
    if (horizon == INT64_MAX) return 1;
    if (earliestHeld_ <= horizon) return 0;
    const double ms = static_cast<double>(earliestHeld_ - horizon) * 1000.0 / segment_.config.sampleRate;
    return ms >= cap ? cap : static_cast<int>(ms);
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
