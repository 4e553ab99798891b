// The output stage's callback (relay layout): plays, each cycle, the active worker's block
// of the previous cycle, or the standby's block of the same number when the active's is
// missing or fenced. Deliberately tiny: no parsing, no synthesis, nothing that can fail.
#pragma once

#include <jack/jack.h>
#include <portaudio.h>

#include <pthread.h>

#include <atomic>
#include <cstdint>

#include "engine/rt/callback_timing.h"
#include "engine/rt/stale_buffer.h"
#include "shm/layout.h"

namespace sustain {

/// One cycle of the output stage, for diagnosis (sustain-output --trace FILE).
struct OutputTraceRecord {
    uint64_t cycle;
    uint64_t number;         // block played
    uint64_t activeLast;     // the active worker's lastBlock at that moment
    uint64_t standbyLast;
    uint64_t startNs;
    uint64_t blockStartNs;   // start of the callback that rendered the block played
    uint32_t source;         // 0 active, 1 standby, 2 none (silence), 3 not playing
    uint32_t activeSlot;
    uint32_t lag;
    uint32_t reserved;
};
inline constexpr uint32_t kOutputTraceCapacity = 4096;
struct OutputTrace {
    RingIndices indices;
    OutputTraceRecord slots[kOutputTraceCapacity];
};

/// OutputContext::delayPublished while this stage has published nothing since it last
/// became the stage that plays.
inline constexpr uint32_t kDelayUnpublished = UINT32_MAX;

/// What the output callback owns. Built before the stream starts.
struct OutputContext {
    Segment* segment = nullptr;
    bool stackTouched = false;  // the audio thread's stack is resident (touchCallbackStack)
    uint32_t slot = 0;          // index into Segment::outputs
    uint32_t channels = 2;      // of the device
    uint64_t startEpoch = 0;
    double samplesPerNs = 48000.0 / 1e9;
    uint64_t lastWriterCallbacks = 0;  // standby output stage: the playing one's callbacks, last seen
    uint32_t writerStall = 0;
    CurrentCycle previousCycle;        // the JACK cycle of this stage's previous callback
    uint32_t lastWriter = kOutputSlots;  // the playing stage in this stage's previous cycle (kOutputSlots: none yet)
    uint32_t trailingCycles = 0;       // cycles in a row the play position trailed by more than one period
    // How many periods lie between a block's rendering and its playing (1 normally; 2 after
    // some re-locks): published into FrameClock::playLatencyFrames once kDelayCycles cycles
    // agree, so that timed bundles aim at what the listener hears. The stream's own output
    // latency is stored by the main thread once the stream runs (0 until then).
    std::atomic<uint32_t> reportedLatencyFrames{0};
    // JACK's cycle clock, as the workers read it (set once by the main thread, like theirs):
    // with it the delay is counted in JACK frames, exactly; without, from start times.
    std::atomic<jack_client_t*> jackClock{nullptr};
    uint32_t delayCandidate = 0;
    uint32_t delayAgreeing = 0;
    uint32_t delayPublished = kDelayUnpublished;  // periods last published while this stage played
    float scratch[kMaxRelayFrames * kAudioChannels] = {};
    double loadSmoothed = 0.0;
    std::atomic<uint64_t> blocks{0};
    std::atomic<uint32_t> stopRequested{0};
    OutputTrace* trace = nullptr;  // diagnosis only; null in normal use
    // Silencing the other stage's stale buffer when this one plays instead of it
    // (engine/rt/stale_buffer.h).
    StaleBuffer stale;
    AudioThread audioThread;
};

/// Copies block `number` of `ring` into `out` (interleaved, `channels` channels, taking the
/// ring's left channel for a mono device) if it is complete, of `epoch`, and not rewritten
/// meanwhile. Thread: the audio thread.  RT-safe: yes.
bool readAudioBlock(const AudioRing& ring, uint64_t number, uint64_t epoch, uint32_t frames, float* out,
                    uint32_t channels) noexcept;

/// One cycle of the output stage. Thread: the audio thread.  RT-safe: yes.
void renderOutputBlock(OutputContext& context, float* out, uint32_t frames) noexcept;

/// The PortAudio stream callback; `userData` is an OutputContext.
/// Thread: the audio thread.  RT-safe: yes.
int paOutputCallback(const void* input, void* output, unsigned long frames, const PaStreamCallbackTimeInfo* timeInfo,
                     PaStreamCallbackFlags statusFlags, void* userData) noexcept;

}  // namespace sustain
