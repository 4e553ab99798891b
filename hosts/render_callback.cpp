#include "hosts/render_callback.h"

#include <cstring>

#include "engine/rt/rt_guard_hooks.h"

namespace sustain {
namespace {

/// Takes a newer snapshot, then the commands that follow the snapshot rendered from.
void takeLinkInput(RenderHostContext& context) noexcept {
    const uint32_t newest = context.snapshotGeneration.load(std::memory_order_acquire);
    if (newest != context.generation) {
        RenderSnapshot snapshot;
        if (seqlockRead(context.snapshotSequence, context.snapshotWords, snapshot) && snapshot.generation == newest) {
            TaggedRenderConfig config;
            config.voices = context.voices;
            config.sampleRate = context.sampleRate;
            config.rampSamples = snapshot.rampSamples;
            context.renderer.configure(config);
            context.renderer.reset(snapshot.state);
            context.generation = newest;
            context.inStep = true;
        }
    }
    QueuedTaggedCommand item;
    for (uint32_t taken = 0; taken < kRenderQueueCapacity; ++taken) {
        const QueuedTaggedCommand* next = context.queue->peek();
        if (next == nullptr) break;
        // A command of a snapshot not yet taken waits for it (it is written first).
        if (next->generation > context.generation) break;
        context.queue->try_dequeue(item);
        if (item.generation < context.generation) continue;  // of an older snapshot: the latest holds it
        switch (context.renderer.add(item.command)) {
            case TaggedRenderer::AddResult::Late:
                context.lateCommands.fetch_add(1, std::memory_order_relaxed);
                context.inStep = false;
                break;
            case TaggedRenderer::AddResult::Full:
                context.droppedCommands.fetch_add(1, std::memory_order_relaxed);
                context.inStep = false;
                break;
            case TaggedRenderer::AddResult::Added:
            case TaggedRenderer::AddResult::Coalesced:
                break;
        }
    }
}

}  // namespace

void rememberBlock(RenderHostContext& context, const float* audio, const float* label, uint32_t frames) noexcept {
    context.recentNewest = (context.recentNewest + 1) % kBlockRepeats;
    std::memcpy(context.recentAudio[context.recentNewest], audio, sizeof(float) * frames);
    std::memcpy(context.recentLabel[context.recentNewest], label, sizeof(float) * frames);
}

bool renderRequestedBlock(RenderHostContext& context, const float* request, float* audio, float* label,
                          uint32_t frames) noexcept {
    takeLinkInput(context);
    RenderRequest asked;
    if (!readRequest(request, frames, asked)) {
        context.noRequest.fetch_add(1, std::memory_order_relaxed);
        std::memset(audio, 0, sizeof(float) * frames);
        std::memset(label, 0, sizeof(float) * frames);
        return false;
    }
    TaggedRenderer& renderer = context.renderer;
    if (context.generation == 0 || renderer.nextTag() > asked.tag) {
        // No state yet, or a snapshot ahead of the requests (it is taken a few cycles ahead):
        // nothing to offer for this number.
        std::memset(audio, 0, sizeof(float) * frames);
        std::memset(label, 0, sizeof(float) * frames);
        return false;
    }
    if (asked.tag - renderer.nextTag() > kMaxBehindBlocks) context.inStep = false;  // a fresh snapshot will do
    if (!context.inStep) context.resyncWanted.store(1, std::memory_order_release);
    const bool linkUp = context.linkUp.load(std::memory_order_acquire) != 0;
    auto render = [&](float* into, float* labelled) {
        BlockLabel out;
        out.tag = renderer.nextTag();
        renderer.render(into, 1, frames);
        out.lastSequence = renderer.lastSequence();
        out.snapshot = context.generation;
        out.inStep = context.inStep && linkUp && out.tag <= asked.tag;
        writeLabel(labelled, frames, out);
    };
    uint32_t caughtUp = 0;
    while (context.inStep && renderer.nextTag() < asked.tag && caughtUp < kMaxCatchUpBlocks) {
        render(context.scratch, context.scratchLabel);
        rememberBlock(context, context.scratch, context.scratchLabel, frames);
        ++caughtUp;
    }
    context.catchUpBlocks.fetch_add(caughtUp, std::memory_order_relaxed);
    if (context.inStep && renderer.nextTag() < asked.tag) {
        // Still behind: nothing of this number to offer yet.
        std::memset(audio, 0, sizeof(float) * frames);
        std::memset(label, 0, sizeof(float) * frames);
        return false;
    }
    render(audio, label);
    context.blocksRendered.fetch_add(1, std::memory_order_relaxed);
    return true;
}

int paRenderHostCallback(const void* input, void* output, unsigned long frames, const PaStreamCallbackTimeInfo*,
                         PaStreamCallbackFlags, void* userData) noexcept {
    RtGuardScope guard;
    auto& context = *static_cast<RenderHostContext*>(userData);
    context.audioThread.note();
    auto* out = static_cast<float*>(output);
    const auto count = static_cast<uint32_t>(frames > kMaxRelayFrames ? kMaxRelayFrames : frames);
    float request[kMaxRelayFrames];
    float audio[kMaxRelayFrames];
    float label[kMaxRelayFrames];
    if (input != nullptr)
        std::memcpy(request, input, sizeof(float) * count);
    else
        std::memset(request, 0, sizeof(float) * count);
    const bool fresh = renderRequestedBlock(context, request, audio, label, count);
    const uint32_t channels = context.outputChannels;
    const float* sources[kNetjackReturnChannels] = {audio, label};
    for (uint32_t age = 1; age <= kBlockRepeats; ++age) {
        const uint32_t at = (context.recentNewest + kBlockRepeats + 1 - age) % kBlockRepeats;
        sources[netjackAudioChannel(age) - 1] = context.recentAudio[at];
        sources[netjackLabelChannel(age) - 1] = context.recentLabel[at];
    }
    for (uint32_t frame = 0; frame < count; ++frame)
        for (uint32_t channel = 0; channel < channels; ++channel)
            out[frame * channels + channel] = channel < kNetjackReturnChannels ? sources[channel][frame] : 0.0f;
    if (fresh) rememberBlock(context, audio, label, count);
    return paContinue;
}

}  // namespace sustain
