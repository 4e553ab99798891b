#include "hosts/host_output_callback.h"

#include <cstring>

#include "shm/frame_clock.h"

namespace sustain {
namespace {

const float* inputBuffer(jack_port_t* port, jack_nframes_t frames) noexcept {
    return port == nullptr ? nullptr : static_cast<const float*>(jack_port_get_buffer(port, frames));
}

/// Files the block a render host delivered in this cycle, and counts it.
void receive(HostOutputContext& context, uint32_t host, uint64_t cycle, jack_nframes_t frames) noexcept {
    const float* label = inputBuffer(context.labelIn[host], frames);
    const float* audio = inputBuffer(context.audioIn[host], frames);
    BlockLabel found;
    if (label == nullptr || audio == nullptr || !readLabel(label, frames, found)) return;
    HostsRegion& hosts = context.segment->hosts;
    RenderHostSlot& slot = hosts.hosts[host];
    const uint32_t playout = hosts.playoutPeriods.load(std::memory_order_relaxed);
    slot.blocks.fetch_add(1, std::memory_order_relaxed);
    slot.lastArrivalCycle.store(cycle + 1, std::memory_order_relaxed);
    const uint64_t askedIn = found.tag >= playout ? found.tag - playout : 0;
    slot.latencyCycles.store(cycle >= askedIn ? static_cast<uint32_t>(cycle - askedIn) : 0, std::memory_order_relaxed);
    if (!found.inStep) {
        slot.outOfStepBlocks.fetch_add(1, std::memory_order_relaxed);
        slot.inStepRun.store(0, std::memory_order_relaxed);
    }
    if (found.tag < cycle) {  // its cycle has been played: too late to be heard
        slot.lateBlocks.fetch_add(1, std::memory_order_relaxed);
        slot.inStepRun.store(0, std::memory_order_relaxed);
        return;
    }
    if (found.inStep) slot.inStepRun.fetch_add(1, std::memory_order_relaxed);
    HostBlock& block = context.blocks[host][found.tag % kHostRingBlocks];
    block.tag = found.tag + 1;
    block.label = found;
    std::memcpy(block.samples, audio, sizeof(float) * frames);
}

const HostBlock* blockFor(const HostOutputContext& context, uint32_t host, uint64_t tag) noexcept {
    const HostBlock& block = context.blocks[host][tag % kHostRingBlocks];
    return block.tag == tag + 1 ? &block : nullptr;
}

}  // namespace

int hostRequestProcess(jack_nframes_t frames, void* arg) noexcept {
    auto& context = *static_cast<HostOutputContext*>(arg);
    const uint64_t cycle = context.requestCycles.cycle(jack_last_frame_time(context.requestClient), frames);
    const uint32_t playout = context.segment->hosts.playoutPeriods.load(std::memory_order_relaxed);
    auto* out = static_cast<float*>(jack_port_get_buffer(context.request, frames));
    writeRequest(out, frames, RenderRequest{cycle + playout});
    return 0;
}

int hostPlayProcess(jack_nframes_t frames, void* arg) noexcept {
    auto& context = *static_cast<HostOutputContext*>(arg);
    context.audioThread.note();
    Segment& segment = *context.segment;
    HostsRegion& hosts = segment.hosts;
    jack_nframes_t frameTime = 0;
    jack_time_t startUs = 0;
    jack_time_t nextUs = 0;
    float periodUs = 0.0f;
    if (jack_get_cycle_times(context.playClient, &frameTime, &startUs, &nextUs, &periodUs) != 0) {
        frameTime = jack_last_frame_time(context.playClient);
        startUs = jack_get_time();
        periodUs = static_cast<float>(frames) * 1e6f / static_cast<float>(segment.config.sampleRate);
    }
    const uint64_t cycle = context.playCycles.cycle(frameTime, frames);
    const int64_t startNs =
        static_cast<int64_t>(startUs) * 1000 - context.jackMinusMonotonicNs.load(std::memory_order_relaxed);

    for (uint32_t host = 0; host < kRenderHostSlots; ++host) receive(context, host, cycle, frames);

    // Play block `cycle`: the preferred host's in step, the other's in step, anything, silence.
    const uint32_t preferred = hosts.preferred.load(std::memory_order_acquire) % kRenderHostSlots;
    const uint32_t other = (preferred + 1) % kRenderHostSlots;
    const HostBlock* first = blockFor(context, preferred, cycle);
    const HostBlock* second = blockFor(context, other, cycle);
    if (first != nullptr && second != nullptr && first->label.inStep && second->label.inStep) {
        hosts.compared.fetch_add(1, std::memory_order_relaxed);
        if (std::memcmp(first->samples, second->samples, sizeof(float) * frames) == 0)
            hosts.matched.fetch_add(1, std::memory_order_relaxed);
    }
    const HostBlock* play = nullptr;
    uint32_t from = preferred;
    if (first != nullptr && first->label.inStep) {
        play = first;
        hosts.fromPreferred.fetch_add(1, std::memory_order_relaxed);
    } else if (second != nullptr && second->label.inStep) {
        play = second;
        from = other;
        hosts.fromOther.fetch_add(1, std::memory_order_relaxed);
    } else if (first != nullptr || second != nullptr) {
        play = first != nullptr ? first : second;
        from = first != nullptr ? preferred : other;
        hosts.outOfStepPlayed.fetch_add(1, std::memory_order_relaxed);
    } else {
        hosts.unfilled.fetch_add(1, std::memory_order_relaxed);
    }
    if (play != nullptr) hosts.hosts[from].played.fetch_add(1, std::memory_order_relaxed);
    // On shutdown: a linear fade to silence, then silence until the process exits.
    const bool stopping = segment.control.shutdownRequested.load(std::memory_order_acquire) != 0;
    float faded[kMaxRelayFrames];
    const float* samples = play != nullptr ? play->samples : nullptr;
    if (stopping && samples != nullptr) {
        for (uint32_t i = 0; i < frames; ++i, ++context.fadeDone) {
            const uint32_t left = context.fadeDone < context.fadeSamples ? context.fadeSamples - context.fadeDone : 0;
            faded[i] = samples[i] * static_cast<float>(left) / static_cast<float>(context.fadeSamples);
        }
        samples = faded;
    }
    if (stopping && context.fadeDone >= context.fadeSamples) segment.outputs[0].fadedOut.store(1, std::memory_order_release);
    for (jack_port_t* port : context.out) {
        if (port == nullptr) continue;
        auto* out = static_cast<float*>(jack_port_get_buffer(port, frames));
        if (samples != nullptr)
            std::memcpy(out, samples, sizeof(float) * frames);
        else
            std::memset(out, 0, sizeof(float) * frames);
    }

    // The engine's frame clock: frame cycle * period is played at this cycle's start.
    FrameAnchor anchor{};
    anchor.frame = cycle * frames;
    anchor.startNs = startNs;
    anchor.nsPerFrame = static_cast<double>(periodUs) * 1000.0 / frames;
    anchor.source = static_cast<uint64_t>(FrameClockSource::Jack);
    anchor.epoch = segment.slots[0].epoch.load(std::memory_order_relaxed);
    publishFrameAnchor(segment.clock, 0, anchor);
    hosts.cycleStartNs.store(static_cast<uint64_t>(startNs), std::memory_order_relaxed);
    hosts.cycle.store(cycle, std::memory_order_release);
    WorkerSlot& self = segment.outputs[0];
    self.callbacks.fetch_add(1, std::memory_order_relaxed);
    self.lastCallbackNs.store(static_cast<uint64_t>(startNs), std::memory_order_relaxed);
    context.callbacks.fetch_add(1, std::memory_order_release);
    return 0;
}

}  // namespace sustain
