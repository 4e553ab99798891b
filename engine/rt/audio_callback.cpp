#include "engine/rt/audio_callback.h"

#include <cstring>

#include "engine/rt/callback_timing.h"
#include "engine/rt/rt_guard_hooks.h"
#include "engine/rt/synth.h"
#include "shm/clock.h"
#include "shm/seqlock.h"

namespace sustain {

namespace {

/// Cycles without the active advancing after which a direct-layout standby plays instead.
/// Two, because the order of clients within a JACK cycle may flip once (one cycle in which
/// the active seems not to advance) but never twice in a row.
constexpr uint32_t kTakeoverCycles = 2;

// RT-safe: bounded by kMaxCommandsPerBlock. Keeps the newest command per parameter.
void takeQueuedCommands(CallbackContext& context) noexcept {
    WorkerMetrics& metrics = context.segment->workers[context.slot];
    Command command;
    uint32_t taken = 0;
    while (taken < kMaxCommandsPerBlock && context.queue->try_dequeue(command)) {
        ++taken;
        PendingCommand& pending = context.pending[command.param < kParamCount ? command.param : 0];
        if (pending.valid) {
            if (command.sequence <= pending.command.sequence) continue;
            metrics.callbackCoalesced.fetch_add(1, std::memory_order_relaxed);
        }
        pending.command = command;
        pending.valid = true;
    }
    if (taken == kMaxCommandsPerBlock)
        rtLog(*context.log, context.segment->slots[context.slot].rtLogDropped, RtEvent::QueueBacklog, taken);
}

// RT-safe: a bounded seqlock read and a copy.
// A standby renders each block from the active's end-of-block state, so that its block is
// the same signal; when the active does not advance (dead, hung, or simply later in this
// cycle) it continues from its own state.
void followActive(CallbackContext& context, uint64_t nowNs) noexcept {
    Segment& segment = *context.segment;
    WorkerSlot& slot = segment.slots[context.slot];
    const uint32_t active = segment.control.activeSlot.load(std::memory_order_acquire);
    bool advanced = false;
    if (active < kWorkerSlots && active != context.slot) {
        const PublishedState& published = segment.state[active];
        RenderState candidate;
        const uint64_t epoch = published.epoch.load(std::memory_order_acquire);
        // Another active process (a failover, a cold start) numbers its blocks its own way:
        // what we synced from before says nothing about it.
        if (epoch != context.syncedEpoch) context.syncedThrough = 0;
        if (seqlockRead(published.sequence, published.words, candidate) &&
            epoch == segment.slots[active].epoch.load(std::memory_order_acquire) &&
            candidate.blocks > context.syncedThrough) {
            context.syncedEpoch = epoch;
            context.state = candidate;
            context.syncedThrough = candidate.blocks;
            advanced = true;
            // Commands the active has applied are confirmed: no need to hold them any more.
            for (uint32_t p = 0; p < kParamCount; ++p) {
                PendingCommand& pending = context.pending[p];
                if (pending.valid && pending.command.sequence <= candidate.appliedSequence[p]) pending.valid = false;
            }
        }
    }
    if (advanced) {
        context.activeStall = 0;
        slot.syncedBlocks.fetch_add(1, std::memory_order_relaxed);
        slot.activeStall.store(0, std::memory_order_relaxed);
        return;
    }
    if (context.activeStall++ == 0) slot.stallSinceNs.store(nowNs, std::memory_order_relaxed);
    slot.activeStall.store(context.activeStall, std::memory_order_relaxed);
    slot.ownBlocks.fetch_add(1, std::memory_order_relaxed);
    if (!context.relay && !context.tookOver && context.activeStall >= kTakeoverCycles) {
        context.tookOver = true;
        slot.takeoverNs.store(nowNs, std::memory_order_relaxed);
        slot.takeover.store(1, std::memory_order_release);
    }
}

// RT-safe: a loop over the fixed number of parameters.
// The active applies and forgets; a standby applies but keeps each command until the
// active's state confirms it, because its next block may again start from a state of the
// active that does not contain it yet.
void applyPending(CallbackContext& context, uint64_t nowNs, bool active) noexcept {
    WorkerMetrics& metrics = context.segment->workers[context.slot];
    for (uint32_t p = 0; p < kParamCount; ++p) {
        PendingCommand& pending = context.pending[p];
        if (!pending.valid) continue;
        const Command& command = pending.command;
        if (command.sequence > context.state.appliedSequence[p]) {
            // During the shutdown fade the master ramp belongs to the fade.
            if (!(context.fading && p == kParamMasterGain)) applyParam(context.state, p, command.value, context.rampSamples);
            context.state.appliedSequence[p] = command.sequence;
            if (active) {
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
        }
        if (active) pending.valid = false;
    }
}

// RT-safe: two atomic loads.
// The output stage trails by more than the one period the relay layout costs (it missed a
// cycle the workers did not): render no block this cycle, so it catches up without a jump
// in the sound. At most once every few cycles, so that the stage's figure can follow.
bool holdBackForOutput(CallbackContext& context) noexcept {
    constexpr uint32_t kHoldCooldownCycles = 8;
    if (context.holdCooldown > 0) {
        --context.holdCooldown;
        return false;
    }
    if (context.segment->output.lagBlocks.load(std::memory_order_relaxed) == 0 || context.fading) return false;
    context.holdCooldown = kHoldCooldownCycles;
    context.segment->output.lagBlocks.store(0, std::memory_order_relaxed);
    context.segment->slots[context.slot].heldBlocks.fetch_add(1, std::memory_order_relaxed);
    return true;
}

// RT-safe: a bounded copy into the audio ring, under the block's tag protocol.
void publishBlock(CallbackContext& context, uint64_t number, uint32_t frames, uint64_t startNs) noexcept {
    AudioBlock& block = context.segment->audio[context.slot].blocks[number % kAudioRingBlocks];
    block.tag.store(0, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    block.frames = frames;
    block.epoch.store(context.startEpoch, std::memory_order_relaxed);
    block.startNs.store(startNs, std::memory_order_relaxed);
    const uint32_t count = frames * kAudioChannels;
    for (uint32_t i = 0; i < count; ++i) block.samples[i].store(context.scratch[i], std::memory_order_relaxed);
    block.tag.store(number + 1, std::memory_order_release);
}

}  // namespace

void renderCallbackBlock(CallbackContext& context, float* out, uint32_t frames, bool underflow) noexcept {
    const uint64_t startNs = monotonicNs();
    Segment& segment = *context.segment;
    WorkerSlot& slot = segment.slots[context.slot];
    const size_t outSamples = static_cast<size_t>(frames) * context.channels;
    if (underflow) {
        const uint64_t xruns = slot.xruns.fetch_add(1, std::memory_order_relaxed) + 1;
        rtLog(*context.log, slot.rtLogDropped, RtEvent::Xrun, static_cast<int64_t>(xruns));
    }

    // Fencing: a worker whose slot's epoch is no longer its own was replaced; it must
    // neither consume commands nor produce sound, even for one block.
    if (slot.epoch.load(std::memory_order_acquire) != context.startEpoch || frames > kMaxRelayFrames) {
        std::memset(out, 0, sizeof(float) * outSamples);
        return;
    }

    if (!context.fading && (segment.control.shutdownRequested.load(std::memory_order_acquire) != 0 ||
                            context.stopRequested.load(std::memory_order_acquire) != 0)) {
        rampTo(context.state.master, 0.0, context.fadeSamples);
        context.fading = true;
    }
    const bool active = slot.role.load(std::memory_order_acquire) == static_cast<uint32_t>(WorkerRole::Active);
    takeQueuedCommands(context);
    if (active && context.relay && holdBackForOutput(context)) {
        std::memset(out, 0, sizeof(float) * outSamples);
        slot.callbacks.fetch_add(1, std::memory_order_release);
        slot.lastCallbackNs.store(monotonicNs(), std::memory_order_release);
        context.blocks.fetch_add(1, std::memory_order_release);
        return;
    }
    if (!active) followActive(context, startNs);
    if (context.fading && context.state.master.target != 0.0) rampTo(context.state.master, 0.0, context.fadeSamples);
    applyPending(context, startNs, active);

    const uint64_t number = context.state.blocks;
    const RenderStats stats =
        renderBlock(context.state, context.voices, context.sampleRate, context.scratch, kAudioChannels, frames);
    if (stats.clipped != 0 && active) {
        slot.clippedSamples.fetch_add(stats.clipped, std::memory_order_relaxed);
        rtLog(*context.log, slot.rtLogDropped, RtEvent::Clipped, stats.clipped);
    }
    if (context.relay) {
        publishBlock(context, number, frames, startNs);
        // The relay layout keeps every worker out of the mix: a dead worker's last
        // buffer, which JACK keeps mixing until it drops the client, is silence.
        std::memset(out, 0, sizeof(float) * outSamples);
    } else if (active || context.tookOver) {
        for (uint32_t f = 0; f < frames; ++f)
            for (uint32_t c = 0; c < context.channels; ++c) out[size_t{f} * context.channels + c] = context.scratch[size_t{f} * kAudioChannels];
    } else {
        std::memset(out, 0, sizeof(float) * outSamples);  // a direct-layout standby shadows in silence
    }
    if (context.fading && !context.fadedOut && context.state.master.remaining == 0 &&
        context.state.master.current == 0.0) {
        context.fadedOut = true;
        slot.fadedOut.store(1, std::memory_order_release);
    }

    // Publish the end-of-block state for the standby and for the status monitor.
    PublishedState& published = segment.state[context.slot];
    published.epoch.store(context.startEpoch, std::memory_order_relaxed);
    seqlockWrite(published.sequence, published.words, context.state);
    const uint64_t endNs = monotonicNs();
    published.heartbeatNs.store(endNs, std::memory_order_release);
    slot.lastBlock.store(number + 1, std::memory_order_release);

    publishCallbackEnd(slot, context.loadSmoothed, startNs, endNs, frames, context.samplesPerNs);
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
