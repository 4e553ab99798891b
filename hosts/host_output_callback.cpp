#include "hosts/host_output_callback.h"

#include <cstring>

#include "engine/rt/rt_guard_hooks.h"
#include "shm/clock.h"
#include "shm/frame_clock.h"
#include "shm/seqlock.h"

namespace sustain {
namespace {

/// Copies block `tag` of a receiver's ring into `out`; false when it is not there (never
/// arrived, overwritten, or being written this instant).
bool readBlock(const HostReceiver& receiver, uint64_t tag, float* out, uint32_t frames, bool& inStep) noexcept {
    const HostBlock& block = receiver.blocks[tag % kHostRingBlocks];
    const uint64_t before = block.sequence.load(std::memory_order_acquire);
    if ((before & 1) != 0 || block.tag.load(std::memory_order_relaxed) != tag + 1) return false;
    inStep = block.inStep.load(std::memory_order_relaxed) != 0;
    for (uint32_t i = 0; i < frames; ++i) out[i] = block.samples[i].load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    return block.sequence.load(std::memory_order_relaxed) == before;
}

}  // namespace

int hostRequestProcess(jack_nframes_t frames, void* arg) noexcept {
    RtGuardScope guard;
    auto& context = *static_cast<HostOutputContext*>(arg);
    const uint64_t cycle = context.requestCycles.cycle(jack_last_frame_time(context.requestClient), frames);
    const uint32_t playout = context.segment->hosts.playoutPeriods.load(std::memory_order_relaxed);
    auto* out = static_cast<float*>(jack_port_get_buffer(context.request, frames));
    writeRequest(out, frames, RenderRequest{cycle + playout});
    return 0;
}

namespace {

/// Files one labelled block unless it is filed already; false when it was not new or late.
bool fileBlock(HostReceiver& receiver, const BlockLabel& found, const float* audio, uint64_t cycle,
               jack_nframes_t frames) noexcept {
    // In time only if it arrived before its cycle: the play client may run first in this one.
    if (found.tag <= cycle) return false;
    HostBlock& block = receiver.blocks[found.tag % kHostRingBlocks];
    if (block.tag.load(std::memory_order_relaxed) == found.tag + 1) return false;
    const uint64_t begin = seqlockBegin(block.sequence.load(std::memory_order_relaxed));
    block.sequence.store(begin, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    block.tag.store(found.tag + 1, std::memory_order_relaxed);
    block.inStep.store(found.inStep ? 1 : 0, std::memory_order_relaxed);
    for (uint32_t i = 0; i < frames; ++i) block.samples[i].store(audio[i], std::memory_order_relaxed);
    block.sequence.store(begin + 1, std::memory_order_release);
    return true;
}

}  // namespace

int hostReceiveProcess(jack_nframes_t frames, void* arg) noexcept {
    RtGuardScope guard;
    auto& receiver = *static_cast<HostReceiver*>(arg);
    const uint64_t cycle = receiver.cycles.cycle(jack_last_frame_time(receiver.client), frames);
    if (frames > kMaxRelayFrames) return 0;
    HostsRegion& hosts = receiver.context->segment->hosts;
    RenderHostSlot& slot = hosts.hosts[receiver.row];
    // The repeats first: they fill blocks lost in cycles this client was not run in.
    for (uint32_t age = kBlockRepeats; age >= 1; --age) {
        const auto* repeatLabel = static_cast<const float*>(jack_port_get_buffer(receiver.label[age], frames));
        const auto* repeatAudio = static_cast<const float*>(jack_port_get_buffer(receiver.audio[age], frames));
        BlockLabel repeat;
        if (repeatLabel != nullptr && repeatAudio != nullptr && readLabel(repeatLabel, frames, repeat) &&
            fileBlock(receiver, repeat, repeatAudio, cycle, frames))
            slot.recoveredBlocks.fetch_add(1, std::memory_order_relaxed);
    }

    const auto* label = static_cast<const float*>(jack_port_get_buffer(receiver.label[0], frames));
    const auto* audio = static_cast<const float*>(jack_port_get_buffer(receiver.audio[0], frames));
    BlockLabel found;
    if (label == nullptr || audio == nullptr || !readLabel(label, frames, found)) return 0;
    const uint32_t playout = hosts.playoutPeriods.load(std::memory_order_relaxed);
    slot.blocks.fetch_add(1, std::memory_order_relaxed);
    const uint64_t askedIn = found.tag >= playout ? found.tag - playout : 0;
    slot.latencyCycles.store(cycle >= askedIn ? static_cast<uint32_t>(cycle - askedIn) : 0, std::memory_order_relaxed);
    if (!found.inStep) {
        slot.outOfStepBlocks.fetch_add(1, std::memory_order_relaxed);
        slot.inStepRun.store(0, std::memory_order_relaxed);
    } else {
        slot.inStepRun.fetch_add(1, std::memory_order_relaxed);
    }
    if (found.tag <= cycle) slot.lateBlocks.fetch_add(1, std::memory_order_relaxed);
    fileBlock(receiver, found, audio, cycle, frames);
    return 0;
}

int hostPlayProcess(jack_nframes_t frames, void* arg) noexcept {
    RtGuardScope guard;
    auto& context = *static_cast<HostOutputContext*>(arg);
    context.audioThread.note();
    Segment& segment = *context.segment;
    HostsRegion& hosts = segment.hosts;
    const auto callbackStartNs = static_cast<int64_t>(monotonicNs());
    jack_nframes_t frameTime = 0;
    jack_time_t startUs = 0;
    jack_time_t nextUs = 0;
    float periodUs = 0.0f;
    if (jack_get_cycle_times(context.playClient, &frameTime, &startUs, &nextUs, &periodUs) != 0) {
        frameTime = jack_last_frame_time(context.playClient);
        startUs = jack_get_time();
        nextUs = 0;
    }
    if (frames > kMaxRelayFrames) frames = kMaxRelayFrames;
    const uint64_t cycle = context.playCycles.cycle(frameTime, frames);
    if (context.lastPlayedCycle != 0 && cycle > context.lastPlayedCycle + 1)
        hosts.skippedCycles.fetch_add(cycle - context.lastPlayedCycle - 1, std::memory_order_relaxed);
    context.lastPlayedCycle = cycle;

    // Play block `cycle`: the preferred host's in step, the other's in step, anything, silence.
    const uint32_t preferred = hosts.preferred.load(std::memory_order_acquire) % kRenderHostSlots;
    const uint32_t other = (preferred + 1) % kRenderHostSlots;
    bool firstInStep = false;
    bool secondInStep = false;
    const bool first = readBlock(context.receivers[preferred], cycle, context.played, frames, firstInStep);
    const bool second = readBlock(context.receivers[other], cycle, context.other, frames, secondInStep);
    if (first && second && firstInStep && secondInStep) {
        hosts.compared.fetch_add(1, std::memory_order_relaxed);
        if (std::memcmp(context.played, context.other, sizeof(float) * frames) == 0)
            hosts.matched.fetch_add(1, std::memory_order_relaxed);
    }
    const float* samples = nullptr;
    uint32_t from = preferred;
    uint32_t source = 3;
    if (first && firstInStep) {
        source = 0;
        samples = context.played;
        hosts.fromPreferred.fetch_add(1, std::memory_order_relaxed);
    } else if (second && secondInStep) {
        source = 1;
        samples = context.other;
        from = other;
        hosts.fromOther.fetch_add(1, std::memory_order_relaxed);
    } else if (first || second) {
        source = 2;
        samples = first ? context.played : context.other;
        from = first ? preferred : other;
        hosts.outOfStepPlayed.fetch_add(1, std::memory_order_relaxed);
    } else {
        hosts.unfilled.fetch_add(1, std::memory_order_relaxed);
    }
    if (samples != nullptr) hosts.hosts[from].played.fetch_add(1, std::memory_order_relaxed);
    // Counted only in cycles the stage runs: a stall of the audio host itself is no host's fault.
    for (uint32_t row : {preferred, other}) {
        std::atomic<uint64_t>& missing = hosts.hosts[row].missingRun;
        if (row == preferred ? first : second)
            missing.store(0, std::memory_order_relaxed);
        else
            missing.fetch_add(1, std::memory_order_relaxed);
    }
    // On shutdown: a linear fade to silence, then silence until the process exits.
    if (segment.control.shutdownRequested.load(std::memory_order_acquire) != 0) {
        if (samples != nullptr) {
            float* fading = samples == context.played ? context.played : context.other;
            for (uint32_t i = 0; i < frames; ++i, ++context.fadeDone) {
                const uint32_t left = context.fadeDone < context.fadeSamples ? context.fadeSamples - context.fadeDone : 0;
                fading[i] *= static_cast<float>(left) / static_cast<float>(context.fadeSamples);
            }
        }
        if (samples == nullptr || context.fadeDone >= context.fadeSamples)
            segment.outputs[0].fadedOut.store(1, std::memory_order_release);
    }
    for (jack_port_t* port : context.out) {
        if (port == nullptr) continue;
        auto* out = static_cast<float*>(jack_port_get_buffer(port, frames));
        if (samples != nullptr)
            std::memcpy(out, samples, sizeof(float) * frames);
        else
            std::memset(out, 0, sizeof(float) * frames);
    }

    if (HostTrace* trace = context.trace.load(std::memory_order_acquire); trace != nullptr) {
        HostTraceRecord record{cycle, startUs, source, preferred, samples != nullptr ? samples[0] : 0.0f,
                               samples != nullptr ? samples[frames - 1] : 0.0f};
        SpscRing<HostTraceRecord>(trace->indices, trace->slots).tryPush(record);
    }
    // The engine's frame clock: frame cycle * period is played at this cycle's start, by
    // JACK's times of the cycle when they are sane (the local engine's rule); the anchor of
    // the last cycle they were stays in force otherwise.
    FrameAnchor anchor{};
    anchor.epoch = segment.slots[0].epoch.load(std::memory_order_relaxed);
    if (jackFrameAnchor(cycle * frames, startUs, nextUs, context.jackMinusMonotonicNs.load(std::memory_order_relaxed),
                        callbackStartNs, 1e9 / segment.config.sampleRate, context.frameRate, anchor))
        publishFrameAnchor(segment.clock, 0, anchor);
    hosts.cycle.store(cycle, std::memory_order_release);
    WorkerSlot& self = segment.outputs[0];
    self.callbacks.fetch_add(1, std::memory_order_relaxed);
    self.lastCallbackNs.store(static_cast<uint64_t>(callbackStartNs), std::memory_order_relaxed);
    return 0;
}

}  // namespace sustain
