#include "engine/rt/stale_buffer.h"

#include <cstring>

#include "engine/rt/callback_timing.h"

namespace sustain {

namespace {

/// The JACK frame time a claim names. RT-safe: arithmetic.
jack_nframes_t claimedFrame(uint64_t claim) noexcept { return static_cast<jack_nframes_t>(claim >> 1); }

}  // namespace

// RT-safe: atomic loads and arithmetic.
// A dead player is replaced in the first cycle after the one it missed, the least JACK's
// physics allow (that cycle mixed its stale buffer alone); the frame times say so exactly,
// whatever order the two processes run in within a cycle (the player stamps each cycle it
// finished: WorkerSlot::lastCycleFrame). A player that began that cycle and dies in it is
// missed the same; one that is only late and finishes it while this standby plays returns
// silence (stillPlays). A cycle this standby did not run either was not missed by the player
// alone: the driver woke late and JACK's frame time jumped, or JACK reordered the graph;
// taking over there is a takeover without a fault. So this standby must have run the cycle
// before this one itself.
bool playerMissedCycles(const WorkerSlot& player, const CurrentCycle& cycle, const CurrentCycle& ownPrevious,
                        uint32_t frames, uint32_t stallCallbacks) noexcept {
    const uint64_t stamped = player.lastCycleFrame.load(std::memory_order_acquire);
    if (!cycle.known || stamped == 0) return stallCallbacks >= kTakeoverCycles;
    const auto ranIn = static_cast<jack_nframes_t>(stamped);
    const bool ranPrevious = ownPrevious.known && static_cast<jack_nframes_t>(ownPrevious.frame + frames) == cycle.frame;
    return ranPrevious && frameAtOrAfter(cycle.frame, ranIn + kTakeoverCycles * frames);
}

// RT-safe: atomic loads and one CAS, a few attempts at most.
// The claim is 1 << 33 | frame << 1 | slot. A cycle older than the one claimed last is never
// claimed: a process that runs it now runs late, after the other took over, and what it
// wrote would be mixed with what the other plays. Without JACK's frame times there is
// nothing to claim by: the roles decide (the takeover by stall counts). The word changes at
// most once per cycle per process, so a few attempts always settle it; should they not, the
// role decides (the process that plays plays, a takeover waits).
bool claimCycle(std::atomic<uint64_t>& playClaim, const CurrentCycle& cycle, uint32_t slot, bool takingOver) noexcept {
    if (!cycle.known) return true;
    const uint64_t mine = (storedFrame(cycle.frame) << 1) | slot;
    uint64_t claim = playClaim.load(std::memory_order_acquire);
    for (int attempt = 0; attempt < 4; ++attempt) {
        if (claim != 0) {
            if (claimedFrame(claim) == cycle.frame) return claim == mine;
            if (frameAtOrAfter(claimedFrame(claim), cycle.frame)) return false;  // a later cycle is claimed already
        }
        if (playClaim.compare_exchange_strong(claim, mine, std::memory_order_acq_rel)) return true;
    }
    return !takingOver;
}

// RT-safe: an atomic load.
bool stillPlays(const std::atomic<uint64_t>& playClaim, uint32_t slot) noexcept {
    const uint64_t claim = playClaim.load(std::memory_order_acquire);
    return claim == 0 || (claim & 1) == slot;
}

// RT-safe: jack_port_connected, jack_port_flags and jack_port_get_buffer read the server's
// graph in shared memory (no lock, no system call), and a memset of one period per channel.
// The other process's port buffer lives in the server's shared memory, where jackd mixes it
// from; zeroed, it adds nothing to the mix, whenever jackd mixes it and whenever it drops
// the client. A process that does not play a cycle writes silence itself (it lost the
// claim, or it is fenced), so zeroing its buffer is never wrong; it ends once the other
// process has run a callback of its own since (its own silence is in its buffer then), once
// none of its ports is a connected output any more (jackd then mixes none of them; a port
// released by a dead client is no output, and its number may soon name a replacement's
// port), or when the ports were looked up for another process.
void silenceStale(StaleBuffer& stale, const WorkerSlot& peer, bool plays, bool begins, uint32_t frames,
                  OutputMetrics& counts) noexcept {
    if (plays && begins) {
        // The ports of the last process seen running in that slot: the one that played
        // (sustaind may already have reset the slot for a replacement, which is not looked
        // up before it runs).
        const int32_t pid = stale.peerPortsPid.load(std::memory_order_acquire);
        stale.silencing = pid > 0;
        stale.silencedPid = pid;
        stale.peerCallbacksAtStart = peer.callbacks.load(std::memory_order_acquire);
        if (stale.silencing) counts.staleCancellations.fetch_add(1, std::memory_order_relaxed);
    }
    if (!plays || !stale.silencing) {
        stale.silencing = false;
        return;
    }
    if (peer.callbacks.load(std::memory_order_acquire) != stale.peerCallbacksAtStart ||
        stale.peerPortsPid.load(std::memory_order_acquire) != stale.silencedPid) {
        stale.silencing = false;
        return;
    }
    bool silenced = false;
    for (auto& peerPort : stale.peerPorts) {
        jack_port_t* port = peerPort.load(std::memory_order_acquire);
        if (port == nullptr || jack_port_connected(port) <= 0 || (jack_port_flags(port) & JackPortIsOutput) == 0) continue;
        auto* buffer = static_cast<float*>(jack_port_get_buffer(port, frames));
        if (buffer == nullptr) continue;
        std::memset(buffer, 0, sizeof(float) * frames);
        silenced = true;
    }
    if (silenced)
        counts.staleCancelledCycles.fetch_add(1, std::memory_order_relaxed);
    else
        stale.silencing = false;
}

}  // namespace sustain
