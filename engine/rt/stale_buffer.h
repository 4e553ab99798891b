// A process in JACK's mix that dies leaves its last buffer there: jackd mixes that buffer
// again every cycle until it drops the client (8-17 ms), or until sustaind disconnects its
// ports. The process that plays instead (the standby output stage in the relay layout, the
// standby worker in the direct layout) subtracts it for exactly as long as it is mixed, so
// that what the driver plays is the block that should be heard (docs/failover.md, "A process
// in the mix dies"). Both callbacks use these functions; the rules are decided here only.
#pragma once

#include <jack/jack.h>

#include <atomic>
#include <cstdint>

#include "shm/layout.h"

namespace sustain {

/// The JACK cycle a callback runs in (JACK's frame time at its start), when known.
struct CurrentCycle {
    bool known = false;
    jack_nframes_t frame = 0;
};

/// What a callback keeps to cancel the other process's stale buffer, and to hand its own
/// last buffer over when it stops playing. Owned by the audio thread, except the peer's
/// ports, which the process's control (or main) thread looks up (lookUpPeerPorts, engine/process_setup.h).
struct StaleBuffer {
    // The other process's JACK ports, for the process `peerPortsPid` (ports first, then the
    // pid with release); null when it has none yet or there is no JACK.
    std::atomic<jack_port_t*> peerPorts[kAudioChannels] = {};
    std::atomic<int32_t> peerPortsPid{0};
    bool cancelling = false;             // subtracting `stale` from what this process plays
    int32_t cancelPid = 0;               // the process whose buffer is cancelled
    jack_nframes_t cancelFromFrame = 0;  // JACK's frame time of the takeover's cycle
    uint32_t cancelCycles = 0;
    float stale[kMaxRelayFrames * kAudioChannels] = {};     // its last buffer, two channels at most, interleaved
    float returned[kMaxRelayFrames * kAudioChannels] = {};  // what this process returned last (yieldReturnedBuffer)
};

/// The channels of a device's buffer the kept buffers hold: the two the workers render (a
/// device's further channels are never cancelled). RT-safe: arithmetic.
inline uint32_t keptChannels(uint32_t channels) noexcept { return channels < kAudioChannels ? channels : kAudioChannels; }

/// This process plays from this cycle on, instead of the process in `peer` (the other slot
/// of the same kind): takes that process's last buffer (WorkerSlot::lastOutput names it in
/// the audio ring) to cancel it from now on. Returns true if the cancellation began; false
/// when anything is unknown (no JACK ports to watch, no frame time, silence, the block
/// rewritten since): then nothing is subtracted, which is what JACK does anyway.
/// Thread: the audio thread.  RT-safe: yes.
bool beginCancelling(StaleBuffer& stale, const Segment& segment, const WorkerSlot& peer, uint32_t frames,
                     uint32_t channels, const CurrentCycle& cycle) noexcept;

/// Subtracts the stale buffer from `out` (interleaved, `channels` channels), channel by
/// channel, while that channel's port is still connected. Returns true if it subtracted in
/// this cycle (for the count in OutputMetrics::staleCancelledCycles).
/// Thread: the audio thread.  RT-safe: yes.
bool cancelStale(StaleBuffer& stale, const WorkerSlot& peer, float* out, uint32_t frames, uint32_t channels,
                 const CurrentCycle& cycle) noexcept;

/// This process played in its previous callback and the other one plays now: returns its
/// last buffer once more in this cycle and stamps it (WorkerSlot::yieldedCycleFrame).
/// Thread: the audio thread.  RT-safe: yes.
void yieldReturnedBuffer(StaleBuffer& stale, WorkerSlot& me, float* out, uint32_t frames, uint32_t channels,
                         const CurrentCycle& cycle) noexcept;

/// Keeps what this process returned, for yieldReturnedBuffer. Thread: the audio thread.  RT-safe: yes.
void keepReturnedBuffer(StaleBuffer& stale, const float* out, uint32_t frames, uint32_t channels) noexcept;

}  // namespace sustain
