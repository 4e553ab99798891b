// The audio host's output stage: plays the render hosts' blocks (docs/hosts.md).
//
// Two JACK clients in one process, because of JACK's graph order: the request client writes
// "render block n + D" on a port wired to every render host's netjack2 client (so the
// request leaves in this very cycle), and the play client reads the blocks those clients
// bring back and plays block n. One client doing both would close a loop in the graph.
//
// In every cycle n the play client files each arriving labelled block by its number, then
// plays block n: the preferred host's if it arrived in step, else the other host's, else
// (counted) one not in step, else silence. So a render host that stops delivering costs
// nothing in the cycle it stops: the other host's block of the same number is there.
// Real-time rules (docs/threads.md): no locks, allocation, system calls or logging here.
#pragma once

#include <jack/jack.h>

#include <atomic>
#include <cstdint>

#include "engine/rt/callback_timing.h"
#include "hosts/block_label.h"
#include "shm/layout.h"

namespace sustain {

inline constexpr uint32_t kHostRingBlocks = 32;  // per render host: blocks that arrived, by number % 32

/// The number of the cycle now running: JACK's frame time over the period, widened to 64
/// bits across the 32-bit frame counter's wrap (every 2^32 frames, a day at 48 kHz). The two
/// clients keep one each; they start together, so they count the same wraps.
struct CycleClock {
    uint64_t wraps = 0;
    jack_nframes_t last = 0;
    uint64_t cycle(jack_nframes_t frameTime, uint32_t frames) noexcept {
        if (frameTime < last) ++wraps;
        last = frameTime;
        return ((wraps << 32) + frameTime) / frames;
    }
};

struct HostBlock {
    uint64_t tag = 0;  // number + 1 (0: empty)
    BlockLabel label;
    float samples[kMaxRelayFrames] = {};
};

struct HostOutputContext {
    Segment* segment = nullptr;
    jack_port_t* request = nullptr;                    // the request client's output
    jack_port_t* audioIn[kRenderHostSlots] = {};       // the play client's inputs, one pair per render host
    jack_port_t* labelIn[kRenderHostSlots] = {};
    jack_port_t* out[kAudioChannels] = {};
    jack_client_t* playClient = nullptr;
    jack_client_t* requestClient = nullptr;
    uint32_t frames = 64;
    uint32_t fadeSamples = 240;   // on shutdown the stage fades out over these
    uint32_t fadeDone = 0;        // the play client's thread only
    std::atomic<int64_t> jackMinusMonotonicNs{0};      // writer: the main thread
    CycleClock requestCycles;  // the request client's thread only
    CycleClock playCycles;     // the play client's thread only
    HostBlock blocks[kRenderHostSlots][kHostRingBlocks];
    std::atomic<uint64_t> callbacks{0};
    AudioThread audioThread;
};

/// JACK process callbacks; `arg` is a HostOutputContext. Thread: JACK's process thread.  RT-safe: yes.
int hostRequestProcess(jack_nframes_t frames, void* arg) noexcept;
int hostPlayProcess(jack_nframes_t frames, void* arg) noexcept;

}  // namespace sustain
