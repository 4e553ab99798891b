// The worker's control thread: from the shared command ring to the callback's queue.
#pragma once

#include <array>
#include <atomic>
#include <climits>
#include <cstdint>

#include "engine/rt/audio_callback.h"
#include "shm/command_order.h"
#include "shm/layout.h"
#include "shm/spsc_ring.h"

namespace sustain {

/// Drains the worker's shared ring, drops what its starting snapshot of the state table
/// already holds, coalesces bursts per parameter, and forwards to the callback's queue.
///
/// Timed commands (from OSC bundles with a timetag) are never coalesced: each is held here
/// until its frame is less than kTimedLookaheadBlocks (shm/command_order.h) periods ahead
/// of the frame the callback renders next, then handed to the callback, which applies it at
/// its sample.
/// "Ahead of the callback" is judged by the callback's own frame (`callbackFrame`), not by
/// the engine's frame clock: that clock maps time to frames through JACK's cycle timer,
/// which runs up to 20 ms off for a while after a disturbance (a late wake, a client that
/// joined or died), and a clock that is behind holds a command until after its frame. Only
/// before the callback rendered anything (a stream still opening, an exclusive-device
/// standby waiting for the device) is the frame clock all there is. Held: at most kTimedHoldCapacity (the OSC
/// thread lets at most kMaxTimedEvents wait, and re-sends those to a new worker: twice
/// that always fits); should it ever be full, a command goes on to the callback at once.
///
/// Coalescing: all commands taken in one drain pass are folded per parameter (the newest
/// wins; the others are counted in WorkerMetrics::controlCoalesced). They would have been
/// applied in the same audio block anyway, so the sound is the same and the callback's
/// queue cannot be flooded. Policy when the callback's queue is full: the pending entry
/// stays pending (and keeps coalescing) until there is room; nothing is dropped.
class CommandForwarder {
public:
    /// `callbackFrame`: the frame after the last block this process's callback rendered, 0
    /// before the first (CallbackContext::renderedThrough).
    CommandForwarder(Segment& segment, uint32_t slot, CallbackQueue& queue, const std::atomic<uint64_t>& callbackFrame);

    /// The table versions the callback's initial state was built from.
    void setSnapshot(const std::array<uint64_t, kParamCount>& versions) { snapshot_ = versions; }

    /// One drain pass; returns true if commands are still pending (queue full).
    /// Thread: the control thread.  RT-safe: no system calls, bounded by the ring size.
    bool drainOnce();

    SpscRing<Command>& ring() { return ring_; }

    /// How many commands the last drainOnce() took from the shared ring.
    uint32_t lastTaken() const { return lastTaken_; }

    /// Milliseconds until a held timed command must go to the callback (for the wait in
    /// the control loop), at most `cap`. Thread: the control thread.
    int msUntilNextTimed(int cap) const;

    static constexpr uint32_t kTimedHoldCapacity = 2 * kMaxTimedEvents;

private:
    void forwardDueTimed(uint64_t nowNs);
    int64_t lookaheadFrame(uint64_t nowNs) const;

    Segment& segment_;
    WorkerMetrics& metrics_;
    SpscRing<Command> ring_;
    CallbackQueue& queue_;
    const std::atomic<uint64_t>& callbackFrame_;
    std::array<uint64_t, kParamCount> snapshot_{};
    std::array<Command, kParamCount> pending_{};
    std::array<bool, kParamCount> isPending_{};
    std::array<uint16_t, kParamCount> order_{};  // pending params in arrival order
    uint32_t pendingCount_ = 0;
    std::array<Command, kTimedHoldCapacity> held_{};  // timed commands not yet handed over
    uint32_t heldCount_ = 0;
    int64_t earliestHeld_ = INT64_MAX;                // the smallest dueFrame in held_
    uint32_t lastTaken_ = 0;
};

/// Reads every parameter from the state table (sustaind seeds it with the defaults) into
/// `state`, with ramps of zero length since the stream is not running yet, and returns the
/// versions read. Thread: the worker's main thread.
std::array<uint64_t, kParamCount> loadStateTable(const Segment& segment, RenderState& state);

}  // namespace sustain
