// The PortAudio callback of a worker, and everything it reaches.
//
// Real-time rules (docs/threads.md): no locks, allocation, system calls, logging,
// exceptions or unbounded loops. Commands come in through a ReaderWriterQueue that was
// sized before the stream started (try_dequeue only); log records go out through
// RtLogRing; state and metrics go out through shared-memory atomics.
#pragma once

#include <jack/jack.h>
#include <portaudio.h>
#include <readerwriterqueue/readerwriterqueue.h>

#include <atomic>
#include <cstdint>

#include "engine/rt/rt_log.h"
#include "engine/rt/callback_timing.h"
#include "engine/rt/stale_buffer.h"
#include "shm/frame_clock.h"
#include "shm/layout.h"

namespace sustain {

inline constexpr uint32_t kCallbackQueueCapacity = 1024;
inline constexpr uint32_t kMaxCommandsPerBlock = kCallbackQueueCapacity;  // bounds the loop
/// Timed commands the callback holds; the control thread hands them over only shortly
/// before they are due (kTimedLookaheadBlocks), so this many due at once is a flood.
/// Beyond it, a timed command is applied at once and counted (WorkerMetrics::timedOverflow).
inline constexpr uint32_t kCallbackTimedCapacity = 256;

using CallbackQueue = moodycamel::ReaderWriterQueue<Command>;

/// A command waiting in the callback: the newest per parameter.
struct PendingCommand {
    Command command;
    bool valid;
};

/// What the callback owns. Built and filled by the worker's main thread before the stream
/// starts; afterwards only the audio thread writes `state`, `pending` and the flags.
struct CallbackContext {
    Segment* segment = nullptr;
    bool stackTouched = false;  // the audio thread's stack is resident (touchCallbackStack)
    uint32_t slot = 0;
    uint32_t voices = 1;
    uint32_t channels = 2;
    uint32_t rampSamples = 480;
    uint32_t fadeSamples = 240;
    double sampleRate = 48000.0;
    double samplesPerNs = 48000.0 / 1e9;
    uint64_t startEpoch = 0;  // the epoch the worker was started in
    bool relay = true;        // relay layout: blocks go to the audio ring, the stream plays silence
    CallbackQueue* queue = nullptr;
    RtLogRing* log = nullptr;
    RenderState state{};
    PendingCommand pending[kParamCount] = {};
    Command timed[kCallbackTimedCapacity] = {};  // timed commands not yet applied, in arrival order
    uint32_t timedCount = 0;
    uint32_t periodFrames = 64;
    // The frame clock the active publishes (shm/frame_clock.h): JACK's cycle clock through a
    // client of our own that is never activated (it only reads the server's timer), else the
    // callback's own start times.
    // Set once by the main thread after the stream started (period, offset, then the client
    // with release); the callback loads it with acquire.
    std::atomic<jack_client_t*> jackClock{nullptr};
    jack_nframes_t jackPeriodFrames = 0;
    FrameRateEstimate frameRate;  // the callback's only
    std::atomic<int64_t> jackMinusMonotonicNs{0};  // writer: the control thread, about once a second
    FrameZeroEstimator clock;
    uint64_t syncedThrough = 0;   // the active's `blocks` at our last sync
    uint64_t syncedEpoch = 0;     // the epoch of the active process we last synced from
    CurrentCycle previousCycle;   // standby: the JACK cycle of its previous callback
    uint32_t activeStall = 0;     // own cycles in a row in which the active did not advance
    bool tookOver = false;        // direct layout: this standby plays instead of the active
    uint64_t syncedRun = 0;       // blocks in a row started from the active's state, up to the current stall
    bool handedBack = false;      // direct layout: the current stall ended in a handback (the standby stays in step)
    uint64_t fakeCycleFrame = 0;  // unit tests without a JACK server: the JACK frame time of the cycle (0: none)
    uint64_t handbackFrame = 0;  // direct layout, a standby that plays: the JACK frame from which the active plays again (0: none)
    uint64_t activeCallbacksAtTakeover = 0;  // direct layout, a standby that took over: the active's callbacks then
    bool resumeFrameNumbering = false;  // started as the active: continue the last anchor's frame numbers (first block)
    uint32_t holdCooldown = 0;    // relay layout: cycles before the active may hold back a block again
    bool renderedAhead = false;   // relay layout: the active is a block ahead while its spare is missing
    jack_nframes_t lastCycleFrame = 0;  // relay layout: JACK's frame time of our previous callback's cycle
    bool lastCycleKnown = false;
    bool playedLast = false;  // direct layout: this worker's stream carried its block in the previous callback
    // Direct layout: silencing the other worker's stale buffer when this one plays instead
    // of it (engine/rt/stale_buffer.h).
    StaleBuffer stale;
    float scratch[kMaxRelayFrames * kAudioChannels] = {};
    bool fading = false;
    bool fadedOut = false;
    double loadSmoothed = 0.0;
    std::atomic<uint64_t> blocks{0};         // for the control thread (same process)
    // The frame after the last block rendered (0: none yet), for the control thread's
    // timed-command horizon (engine/control_thread.h).
    std::atomic<uint64_t> renderedThrough{0};
    std::atomic<uint32_t> stopRequested{0};  // set by the control thread on a signal: fade out like a shutdown
    AudioThread audioThread;
};

/// Renders one block: applies queued commands, renders, publishes state and metrics.
/// Thread: the audio thread.  RT-safe: yes.
void renderCallbackBlock(CallbackContext& context, float* out, uint32_t frames, bool underflow) noexcept;

/// The PortAudio stream callback; `userData` is a CallbackContext.
/// Thread: the audio thread.  RT-safe: yes.
int paAudioCallback(const void* input, void* output, unsigned long frames, const PaStreamCallbackTimeInfo* timeInfo,
                    PaStreamCallbackFlags statusFlags, void* userData) noexcept;

}  // namespace sustain
