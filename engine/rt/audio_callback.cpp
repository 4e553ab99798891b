#include "engine/rt/audio_callback.h"

#include <cstring>

#include "engine/rt/rt_guard_hooks.h"
#include "engine/rt/synth.h"
#include "shm/clock.h"
#include "shm/seqlock.h"

namespace sustain {

namespace {

// RT-safe: a bounded loop over at most kMaxCommandsPerBlock queued commands.
void applyQueuedCommands(CallbackContext& context, uint64_t nowNs) noexcept {
    WorkerMetrics& metrics = context.segment->workers[context.slot];
    Command command;
    uint32_t taken = 0;
    while (taken < kMaxCommandsPerBlock && context.queue->try_dequeue(command)) {
        ++taken;
        // During the shutdown fade the master ramp belongs to the fade.
        if (!(context.fading && command.param == kParamMasterGain))
            applyParam(context.state, command.param, command.value, context.rampSamples);
        const uint64_t waitedNs = nowNs > command.receiveNs ? nowNs - command.receiveNs : 0;
        const auto samples = static_cast<uint64_t>(static_cast<double>(waitedNs) * context.samplesPerNs);
        if (samples < kLatencyBins) {
            metrics.latencyBins[samples].fetch_add(1, std::memory_order_relaxed);
        } else {
            metrics.latencyBins[kLatencyBins].fetch_add(1, std::memory_order_relaxed);
            metrics.latencyOverflow.fetch_add(1, std::memory_order_relaxed);
        }
        metrics.latencySum.fetch_add(samples, std::memory_order_relaxed);
        metrics.applied.fetch_add(1, std::memory_order_relaxed);
    }
    if (taken == kMaxCommandsPerBlock) rtLog(*context.log, context.segment->slots[context.slot].rtLogDropped,
                                             RtEvent::QueueBacklog, taken);
}

}  // namespace

void renderCallbackBlock(CallbackContext& context, float* out, uint32_t frames, bool underflow) noexcept {
    const uint64_t startNs = monotonicNs();
    Segment& segment = *context.segment;
    WorkerSlot& slot = segment.slots[context.slot];
    if (underflow) {
        const uint64_t xruns = slot.xruns.fetch_add(1, std::memory_order_relaxed) + 1;
        rtLog(*context.log, slot.rtLogDropped, RtEvent::Xrun, static_cast<int64_t>(xruns));
    }

    // Fencing: a worker whose epoch is no longer current was replaced; it must neither
    // consume commands nor produce sound, even for one block.
    if (slot.epoch.load(std::memory_order_acquire) != segment.control.epoch.load(std::memory_order_acquire)) {
        std::memset(out, 0, sizeof(float) * frames * context.channels);
        return;
    }

    if (!context.fading && (segment.control.shutdownRequested.load(std::memory_order_acquire) != 0 ||
                            context.stopRequested.load(std::memory_order_acquire) != 0)) {
        rampTo(context.state.master, 0.0, context.fadeSamples);
        context.fading = true;
    }
    applyQueuedCommands(context, startNs);

    const RenderStats stats =
        renderBlock(context.state, context.voices, context.sampleRate, out, context.channels, frames);
    if (stats.clipped != 0) {
        slot.clippedSamples.fetch_add(stats.clipped, std::memory_order_relaxed);
        rtLog(*context.log, slot.rtLogDropped, RtEvent::Clipped, stats.clipped);
    }
    if (context.fading && !context.fadedOut && context.state.master.remaining == 0 &&
        context.state.master.current == 0.0) {
        context.fadedOut = true;
        slot.fadedOut.store(1, std::memory_order_release);
    }

    // Publish the end-of-block state for a standby and for the status monitor.
    PublishedState& published = segment.state[context.slot];
    seqlockWrite(published.sequence, published.words, context.state);
    const uint64_t endNs = monotonicNs();
    published.heartbeatNs.store(endNs, std::memory_order_release);

    const double periodNs = static_cast<double>(frames) / context.samplesPerNs;
    const double load = static_cast<double>(endNs - startNs) / periodNs;
    context.loadSmoothed += 0.05 * (load - context.loadSmoothed);
    slot.loadPermille.store(static_cast<uint32_t>(context.loadSmoothed * 1000.0), std::memory_order_relaxed);
    const auto loadPermille = static_cast<uint32_t>(load * 1000.0);
    if (loadPermille > slot.loadPeakPermille.load(std::memory_order_relaxed))
        slot.loadPeakPermille.store(loadPermille, std::memory_order_relaxed);
    slot.lastCallbackNs.store(endNs, std::memory_order_release);
    slot.callbacks.fetch_add(1, std::memory_order_release);
    context.blocks.fetch_add(1, std::memory_order_release);
}

int paAudioCallback(const void* /*input*/, void* output, unsigned long frames,
                    const PaStreamCallbackTimeInfo* /*timeInfo*/, PaStreamCallbackFlags statusFlags,
                    void* userData) noexcept {
    RtGuardScope guard;
    auto& context = *static_cast<CallbackContext*>(userData);
    renderCallbackBlock(context, static_cast<float*>(output), static_cast<uint32_t>(frames),
                        (statusFlags & paOutputUnderflow) != 0);
    return paContinue;
}

}  // namespace sustain
