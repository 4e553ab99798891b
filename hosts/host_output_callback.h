// The audio host's output stage: plays the render hosts' blocks (docs/hosts.md).
//
// One process, 2 + kRenderHostSlots JACK clients, because a JACK client downstream of a
// client that does not finish its cycle is not run at all (JACK keeps mixing its last
// buffer: a buzz), and the netmanager's client of a render host that died or froze does
// not finish its cycles until the netmanager gives up on it, seconds later. So nothing
// that plays may be downstream of a render host:
// - the request client writes "render block n + D" in cycle n on a port wired to every
//   render host's netjack2 client (upstream of them, never waiting on them);
// - one receiver client per render host reads that host's block and label and files the
//   block by its number (it alone waits on its host);
// - the play client has no input from any host: in cycle n it plays block n, the preferred
//   host's if it arrived in step, else the other host's, else (counted) one not in step,
//   else silence.
// The clients may run in any order within a cycle (in parallel, too), so a block counts
// as in time only if it arrived in a cycle before its own: D must exceed netjack2's latency.
// Real-time rules (docs/threads.md): no locks, allocation, system calls or logging here.
#pragma once

#include <jack/jack.h>

#include <atomic>
#include <cstdint>

#include "engine/rt/callback_timing.h"
#include "hosts/block_label.h"
#include "hosts/netjack_ports.h"
#include "shm/frame_clock.h"
#include "shm/layout.h"
#include "shm/spsc_ring.h"

namespace sustain {

inline constexpr uint32_t kHostRingBlocks = 32;  // per render host: blocks that arrived, by number % 32

/// The number of the cycle now running: JACK's frame time over the period, widened to 64
/// bits across the 32-bit frame counter's wrap (every 2^32 frames, a day at 48 kHz). Each
/// client keeps one; they start together, so they count the same wraps.
struct CycleClock {
    uint64_t wraps = 0;
    jack_nframes_t last = 0;
    uint64_t cycle(jack_nframes_t frameTime, uint32_t frames) noexcept {
        if (frameTime < last) ++wraps;
        last = frameTime;
        return ((wraps << 32) + frameTime) / frames;
    }
};

/// A block as a receiver filed it, under a seqlock (one writer: that host's receiver; one
/// reader: the play client, which may run at the same time on another CPU).
struct HostBlock {
    std::atomic<uint64_t> sequence{0};  // odd while written
    std::atomic<uint64_t> tag{0};       // number + 1 (0: empty)
    std::atomic<uint32_t> inStep{0};
    std::atomic<float> samples[kMaxRelayFrames] = {};
};

/// One cycle of the play client, for diagnosis (SUSTAIN_HOST_OUTPUT_TRACE=FILE): what it
/// played, so that a recording's damage can be laid beside it (tools/rehearse-hosts).
struct HostTraceRecord {
    uint64_t cycle;
    uint64_t jackUsecs;   // JACK's start time of the cycle (jack_get_cycle_times)
    uint32_t source;      // 0 the preferred host, 1 the other, 2 one not in step, 3 silence
    uint32_t preferred;   // the preferred row
    float first;          // the first and last sample played
    float last;
};
inline constexpr uint32_t kHostTraceCapacity = 8192;
struct HostTrace {
    RingIndices indices;
    HostTraceRecord slots[kHostTraceCapacity];
};

/// One render host's receiver client.
struct HostReceiver {
    struct HostOutputContext* context = nullptr;
    uint32_t row = 0;
    jack_client_t* client = nullptr;
    // By age: [0] the block and label the host sent in this cycle, [a] those it sent a cycles
    // before, again (hosts/netjack_ports.h).
    jack_port_t* audio[1 + kBlockRepeats] = {};
    jack_port_t* label[1 + kBlockRepeats] = {};
    CycleClock cycles;
    HostBlock blocks[kHostRingBlocks];
};

struct HostOutputContext {
    Segment* segment = nullptr;
    uint32_t frames = 64;
    uint32_t fadeSamples = 240;  // on shutdown the stage fades out over these
    jack_client_t* requestClient = nullptr;
    jack_port_t* request = nullptr;
    CycleClock requestCycles;  // the request client's thread only
    jack_client_t* playClient = nullptr;
    jack_port_t* out[kAudioChannels] = {};
    CycleClock playCycles;  // the play client's thread only
    FrameRateEstimate frameRate;  // the play client's thread only
    uint64_t lastPlayedCycle = 0;  // the play client's thread only (0: none yet)
    uint32_t fadeDone = 0;  // the play client's thread only
    float played[kMaxRelayFrames] = {};  // the play client's thread only
    float other[kMaxRelayFrames] = {};   // the play client's thread only
    HostReceiver receivers[kRenderHostSlots];
    std::atomic<HostTrace*> trace{nullptr};  // diagnosis only; null in normal use (set by the main thread, once)
    std::atomic<int64_t> jackMinusMonotonicNs{0};  // writer: the main thread
    AudioThread audioThread;  // the play client's
};

/// JACK process callbacks. Thread: JACK's process thread of that client.  RT-safe: yes.
int hostRequestProcess(jack_nframes_t frames, void* arg) noexcept;  // arg: HostOutputContext
int hostReceiveProcess(jack_nframes_t frames, void* arg) noexcept;  // arg: HostReceiver
int hostPlayProcess(jack_nframes_t frames, void* arg) noexcept;     // arg: HostOutputContext

}  // namespace sustain
