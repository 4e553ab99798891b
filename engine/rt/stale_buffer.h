// A process in JACK's mix that dies leaves its last buffer there: jackd mixes that buffer
// again every cycle until it drops the client (8-17 ms), or until sustaind disconnects its
// ports. The process that plays instead (the standby output stage in the relay layout, the
// standby worker in the direct layout) silences that buffer where JACK keeps it, in the
// server's shared memory, in every cycle it plays while the dead process's ports are still
// connected, so that what the driver plays is exactly the block that should be heard
// (docs/failover.md, "A process in the mix dies"). Who plays a cycle, when a standby takes
// over, and the silencing are decided here only; both callbacks use these functions.
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

/// What a callback keeps to silence the other process's stale buffer. Owned by the audio
/// thread, except the peer's ports, which the process's control (or main) thread looks up
/// (lookUpPeerPorts, engine/process_setup.h).
struct StaleBuffer {
    // The other process's JACK ports, for the process `peerPortsPid` (ports first, then the
    // pid with release); null when it has none yet or there is no JACK.
    std::atomic<jack_port_t*> peerPorts[kAudioChannels] = {};
    std::atomic<int32_t> peerPortsPid{0};
    bool silencing = false;            // silencing the other process's buffers in each cycle this one plays
    int32_t silencedPid = 0;           // the process whose buffers are silenced
    uint64_t peerCallbacksAtStart = 0; // its callback count when the silencing began
};

/// Has the process that plays (`player`: the active worker in the direct layout, the
/// playing output stage in the relay layout) missed the cycles before this one, so that this
/// process, its standby, should play instead? By JACK's frame times: the player finished no
/// cycle in the last kTakeoverCycles - 1 (WorkerSlot::lastCycleFrame), while this process
/// itself ran the cycle before this one. Without frame times: `stallCallbacks`, this
/// process's callbacks in a row in which the player's callback count did not move, reached
/// kTakeoverCycles. Thread: the audio thread.  RT-safe: yes.
bool playerMissedCycles(const WorkerSlot& player, const CurrentCycle& cycle, const CurrentCycle& ownPrevious,
                        uint32_t frames, uint32_t stallCallbacks) noexcept;

/// Claims the JACK cycle `cycle` for the process in `slot` (OutputMetrics::playClaim): true
/// if it plays that cycle. The process that plays claims each cycle it runs in, before it
/// writes its output (`takingOver` false); its standby claims a cycle only when it takes
/// over (`takingOver` true), and only if nobody has claimed it yet. Either way exactly one
/// process plays a cycle, whatever their order within it. Thread: the audio thread.  RT-safe: yes.
bool claimCycle(std::atomic<uint64_t>& playClaim, const CurrentCycle& cycle, uint32_t slot, bool takingOver) noexcept;

/// Whether the cycle this process claimed is still the newest claim, or the other process
/// has claimed a later one meanwhile (this callback ran so late that the other took over):
/// then what this callback returns would be mixed beside what the other plays, and it must
/// return silence instead. Asked at the end of a callback that plays. Thread: the audio
/// thread.  RT-safe: yes.
bool stillPlays(const std::atomic<uint64_t>& playClaim, uint32_t slot) noexcept;

/// Every callback of a process in the mix: whether it `plays` this cycle and `begins` to
/// play in it instead of the process in `peer` (the other slot of the same kind). From the
/// cycle it begins on, it zeroes that process's port buffers that JACK still mixes, in every
/// cycle it plays; it counts both in `counts` (staleCancellations, staleCancelledCycles).
/// Thread: the audio thread.  RT-safe: yes.
void silenceStale(StaleBuffer& stale, const WorkerSlot& peer, bool plays, bool begins, uint32_t frames,
                  OutputMetrics& counts) noexcept;

}  // namespace sustain
