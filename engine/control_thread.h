// The worker's control thread: from the shared command ring to the callback's queue.
#pragma once

#include <array>
#include <cstdint>

#include "engine/rt/audio_callback.h"
#include "shm/layout.h"
#include "shm/spsc_ring.h"

namespace sustain {

/// Drains the worker's shared ring, drops what its starting snapshot of the state table
/// already holds, coalesces bursts per parameter, and forwards to the callback's queue.
///
/// Coalescing: all commands taken in one drain pass are folded per parameter (the newest
/// wins; the others are counted in WorkerMetrics::controlCoalesced). They would have been
/// applied in the same audio block anyway, so the sound is the same and the callback's
/// queue cannot be flooded. Policy when the callback's queue is full: the pending entry
/// stays pending (and keeps coalescing) until there is room; nothing is dropped.
class CommandForwarder {
public:
    CommandForwarder(Segment& segment, uint32_t slot, CallbackQueue& queue);

    /// The table versions the callback's initial state was built from.
    void setSnapshot(const std::array<uint64_t, kParamCount>& versions) { snapshot_ = versions; }

    /// One drain pass; returns true if commands are still pending (queue full).
    /// Thread: the control thread.  RT-safe: no system calls, bounded by the ring size.
    bool drainOnce();

    SpscRing<Command>& ring() { return ring_; }

private:
    Segment& segment_;
    WorkerMetrics& metrics_;
    SpscRing<Command> ring_;
    CallbackQueue& queue_;
    std::array<uint64_t, kParamCount> snapshot_{};
    std::array<Command, kParamCount> pending_{};
    std::array<bool, kParamCount> isPending_{};
    std::array<uint16_t, kParamCount> order_{};  // pending params in arrival order
    uint32_t pendingCount_ = 0;
};

/// Reads every parameter from the state table (sustaind seeds it with the defaults) into
/// `state`, with ramps of zero length since the stream is not running yet, and returns the
/// versions read. Thread: the worker's main thread.
std::array<uint64_t, kParamCount> loadStateTable(const Segment& segment, RenderState& state);

}  // namespace sustain
