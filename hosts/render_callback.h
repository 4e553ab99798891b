// A render host's audio callback: renders the block the audio host asks for (docs/hosts.md).
//
// netjack2 runs the render host's JACK cycle when the audio host's cycle reaches it, so the
// callback runs once per audio host cycle. Its input carries the request ("render block
// r", hosts/block_label.h), its first output the block, its second the block's label. The
// block is rendered by TaggedRenderer from the state the audio host sent (a snapshot) and the
// commands numbered for each block since, so every render host in step renders the same
// samples for the same number.
// Real-time rules (docs/threads.md): no locks, allocation, system calls or logging here.
#pragma once

#include <portaudio.h>
#include <readerwriterqueue/readerwriterqueue.h>

#include <atomic>
#include <cstdint>

#include "engine/rt/callback_timing.h"
#include "hosts/block_label.h"
#include "hosts/netjack_ports.h"
#include "hosts/tagged_render.h"
#include "shm/seqlock.h"

namespace sustain {

/// Blocks a render host renders, beyond the one asked for, within one callback to catch up
/// with the requests (after a snapshot taken while its stream started, or cycles JACK did
/// not run it in): a sixteenth of a period each at most here, so a callback stays well
/// inside its period. While it is behind it labels nothing (it has nothing in step to
/// offer); it gains 15 blocks a cycle.
inline constexpr uint32_t kMaxCatchUpBlocks = 16;
/// Blocks behind beyond which catching up is not worth it (a second at 64 frames / 48 kHz):
/// the host asks for a new snapshot instead.
inline constexpr uint64_t kMaxBehindBlocks = 750;
inline constexpr uint32_t kRenderQueueCapacity = 4096;

/// A command on its way from the link thread to the callback, with the snapshot it follows.
struct QueuedTaggedCommand {
    TaggedCommand command;
    uint32_t generation;
    uint32_t reserved;
};
using TaggedCommandQueue = moodycamel::ReaderWriterQueue<QueuedTaggedCommand>;

/// A snapshot on its way to the callback.
struct RenderSnapshot {
    uint32_t generation;
    uint32_t rampSamples;
    RenderState state;
};
inline constexpr size_t kRenderSnapshotWords = (sizeof(RenderSnapshot) + 7) / 8;

struct RenderHostContext {
    // The link thread writes these; the callback reads them.
    std::atomic<uint64_t> snapshotSequence{0};  // seqlock over snapshotWords
    std::atomic<uint64_t> snapshotWords[kRenderSnapshotWords] = {};
    std::atomic<uint32_t> snapshotGeneration{0};  // the newest written (0: none yet)
    TaggedCommandQueue* queue = nullptr;
    std::atomic<uint32_t> linkUp{0};  // 1 from a snapshot until the link is lost: no block is in step without it
    uint32_t voices = 4;
    double sampleRate = 48000.0;
    uint32_t outputChannels = 0;  // the stream's, set before it starts (openAndStartStream)
    // The callback's own.
    TaggedRenderer renderer;
    uint32_t generation = 0;  // the snapshot rendered from (0: none)
    bool inStep = false;
    float scratch[kMaxRelayFrames] = {};
    float scratchLabel[kMaxRelayFrames] = {};
    // The last kBlockRepeats blocks rendered with their labels, sent again after each fresh
    // one (hosts/netjack_ports.h): the blocks of the previous cycles, and those rendered to
    // catch up with a request that skipped numbers (a cycle the audio host's driver skipped
    // asked for none), which were never sent at all.
    float recentAudio[kBlockRepeats][kMaxRelayFrames] = {};
    float recentLabel[kBlockRepeats][kMaxRelayFrames] = {};
    uint32_t recentNewest = 0;  // index of the newest in recentAudio/Label
    AudioThread audioThread;
    // The callback writes these; the link thread and the status line read them.
    std::atomic<uint32_t> resyncWanted{0};
    std::atomic<uint64_t> blocksRendered{0};
    std::atomic<uint64_t> catchUpBlocks{0};
    std::atomic<uint64_t> lateCommands{0};
    std::atomic<uint64_t> droppedCommands{0};  // the renderer's pending set was full
    std::atomic<uint64_t> noRequest{0};        // cycles without a request (the audio host's stage not wired)
};

/// Renders the requested block into `audio` and its label into `label`; false when it
/// offers none (both then silent). Blocks rendered to catch up on the way are remembered
/// for the repeats. Thread: the audio thread.  RT-safe: yes.
bool renderRequestedBlock(RenderHostContext& context, const float* request, float* audio, float* label,
                          uint32_t frames) noexcept;

/// Keeps a block and its label for the repeats. Thread: the audio thread.  RT-safe: yes.
void rememberBlock(RenderHostContext& context, const float* audio, const float* label, uint32_t frames) noexcept;

/// The PortAudio stream callback (1 input channel; kNetjackReturnChannels output channels,
/// interleaved: the block, its label, and the previous callbacks' again: hosts/netjack_ports.h);
/// `userData` is a RenderHostContext. Thread: the audio thread.  RT-safe: yes.
int paRenderHostCallback(const void* input, void* output, unsigned long frames, const PaStreamCallbackTimeInfo* timeInfo,
                         PaStreamCallbackFlags statusFlags, void* userData) noexcept;

}  // namespace sustain
