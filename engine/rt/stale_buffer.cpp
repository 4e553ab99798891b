#include "engine/rt/stale_buffer.h"

#include "engine/rt/callback_timing.h"
#include "engine/rt/output_callback.h"

namespace sustain {

namespace {

// Cycles a stale buffer is cancelled at most: JACK drops a dead client within 8-17 ms (and
// sustaind disconnects its ports sooner), so this bound is only reached if something is
// wrong; then subtracting no more is the safer error.
constexpr uint32_t kMaxCancelCycles = 256;

}  // namespace

// RT-safe: atomic loads and the copy of one block.
// JACK keeps mixing the last buffer the other process returned until its ports leave the
// graph: from this cycle on, subtract that buffer while it is mixed, so that the sum is
// exactly the block that should be heard. A subtraction of a buffer that is not mixed
// would be a full-scale click; a stale buffer left alone is what JACK does anyway: so when
// anything is unknown, nothing is subtracted.
bool beginCancelling(StaleBuffer& stale, const Segment& segment, const WorkerSlot& peer, uint32_t frames,
                     uint32_t channels, const CurrentCycle& cycle) noexcept {
    stale.cancelling = false;
    // The ports of the last process seen running in that slot: the one that played (sustaind
    // may already have reset the slot for a replacement, which is not looked up before it runs).
    const int32_t pid = stale.peerPortsPid.load(std::memory_order_acquire);
    if (pid <= 0 || !cycle.known || frames > kMaxRelayFrames) return false;
    const uint64_t last = peer.lastOutput.load(std::memory_order_acquire);
    if (last == 0) return false;  // it returned silence: there is nothing to cancel
    const uint64_t number = (last >> 1) - 1;
    const AudioRing& ring = segment.audio[last & 1];
    const uint64_t epoch = ring.blocks[number % kAudioRingBlocks].epoch.load(std::memory_order_relaxed);
    if (!readAudioBlock(ring, number, epoch, frames, stale.stale, keptChannels(channels))) return false;
    stale.cancelling = true;
    stale.cancelPid = pid;
    stale.cancelFromFrame = cycle.frame;
    stale.cancelCycles = 0;
    return true;
}

// RT-safe: jack_port_connected reads the server's graph in shared memory (no lock, no
// system call; in a JACK process thread it never waits for a pending graph change).
// Measured with JACK2 1.9.21: the connection count a client reads in its process callback
// is the one with which JACK mixes that cycle's buffers, so the switch back to the plain
// block falls on the exact cycle (docs/failover.md). Ends for good once no port is
// connected, in the cycle after the one in which the other process ran again (it was late,
// not dead: in that cycle it returned its last buffer once more, from the next on silence;
// see yieldReturnedBuffer), when its ports were looked up for another process, after
// kMaxCancelCycles, or in a cycle without JACK's frame time (nothing then tells a yield).
bool cancelStale(StaleBuffer& stale, const WorkerSlot& peer, float* out, uint32_t frames, uint32_t channels,
                 const CurrentCycle& cycle) noexcept {
    if (!stale.cancelling) return false;
    // A yield stamped in the takeover's cycle or later (it may come in that very cycle,
    // before or after this process read it), and in an earlier cycle than this one.
    const uint64_t yielded = peer.yieldedCycleFrame.load(std::memory_order_acquire);
    const auto yieldFrame = static_cast<jack_nframes_t>(yielded);
    const bool ranAgain = yielded != 0 && frameAtOrAfter(yieldFrame, stale.cancelFromFrame) &&
                          cycle.frame != yieldFrame && frameAtOrAfter(cycle.frame, yieldFrame);
    if (!cycle.known || ranAgain || stale.peerPortsPid.load(std::memory_order_acquire) != stale.cancelPid ||
        stale.cancelCycles >= kMaxCancelCycles) {
        stale.cancelling = false;
        return false;
    }
    bool anyConnected = false;
    const uint32_t kept = keptChannels(channels);
    for (uint32_t c = 0; c < kept; ++c) {
        jack_port_t* port = stale.peerPorts[c].load(std::memory_order_acquire);
        if (port == nullptr || jack_port_connected(port) <= 0) continue;
        anyConnected = true;
        for (uint32_t f = 0; f < frames; ++f) out[size_t{f} * channels + c] -= stale.stale[size_t{f} * kept + c];
    }
    if (!anyConnected) {
        stale.cancelling = false;
        return false;
    }
    ++stale.cancelCycles;
    return true;
}

// RT-safe: a copy of one block and an atomic store.
// The other process took over because this one missed cycles (it was late, not dead), and
// subtracts this one's last buffer in every cycle up to and including the one this stamp
// names: so this one returns that very buffer once more now (the sum is then the block that
// should be heard) and silence from the next cycle, when the other has seen the stamp.
void yieldReturnedBuffer(StaleBuffer& stale, WorkerSlot& me, float* out, uint32_t frames, uint32_t channels,
                         const CurrentCycle& cycle) noexcept {
    const uint32_t kept = keptChannels(channels);
    for (uint32_t f = 0; f < frames; ++f)
        for (uint32_t c = 0; c < kept; ++c) out[size_t{f} * channels + c] = stale.returned[size_t{f} * kept + c];
    if (cycle.known) me.yieldedCycleFrame.store(storedFrame(cycle.frame), std::memory_order_release);
}

// RT-safe: a copy of one block.
void keepReturnedBuffer(StaleBuffer& stale, const float* out, uint32_t frames, uint32_t channels) noexcept {
    const uint32_t kept = keptChannels(channels);
    for (uint32_t f = 0; f < frames; ++f)
        for (uint32_t c = 0; c < kept; ++c) stale.returned[size_t{f} * kept + c] = out[size_t{f} * channels + c];
}

}  // namespace sustain
