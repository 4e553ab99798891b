// Rendering by block number: how two machines render the same samples without sharing memory.
//
// On one machine a standby starts each block from the active's published state. Across
// machines there is no shared memory, so every render host (and the audio host's own
// reference copy of the state, which renders nothing anyone hears) runs this same
// deterministic function instead: block `tag` is rendered from the state after block
// `tag - 1` and the commands the audio host numbered for block `tag`, each at its frame in
// the block. The audio host numbers every command once (hosts/audio_link.cpp), so every
// host applies it in the same block at the same frame, and the same state and the same
// commands render bit-identical samples (engine/rt/synth.h).
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/rt/synth.h"
#include "shm/layout.h"

namespace sustain {

/// A parameter change with the block and frame it applies at. A fixed-size POD: it crosses
/// the network (hosts/link_protocol.h) and the render host's queue to its callback.
struct TaggedCommand {
    uint64_t tag;       // the block it applies in (the audio host's play cycle)
    uint64_t sequence;  // the OSC thread's number: orders changes (shm/command_order.h)
    double value;       // validated by the audio host's OSC thread
    uint32_t offset;    // the frame within the block
    uint16_t param;     // as Command::param
    uint16_t flags;     // as Command::flags (kCommandFlagTimed: applies even if a newer plain change was applied)
};
static_assert(sizeof(TaggedCommand) == 32);

/// What render hosts and the reference need to render alike (the audio host's config).
struct TaggedRenderConfig {
    uint32_t voices = 4;
    uint32_t rampSamples = 480;
    double sampleRate = 48000.0;
};

/// A state, the number of the next block it renders, and the commands waiting for their
/// block. Thread: one owner (a render host's callback, or the audio host's link loop).
/// RT-safe: yes (fixed arrays; every loop bounded by kPendingCapacity or the block's frames).
class TaggedRenderer {
public:
    static constexpr uint32_t kPendingCapacity = 2048;

    enum class AddResult { Added, Coalesced, Late, Full };

    void configure(const TaggedRenderConfig& config) noexcept { config_ = config; }
    const TaggedRenderConfig& config() const noexcept { return config_; }

    /// Starts over from `state`, whose next block is `state.blocks`; drops every pending command.
    void reset(const RenderState& state) noexcept;

    /// Queues a command for its block. Late: its block is rendered already (the caller
    /// decides: a render host is then out of step). Coalesced: a newer change of the same
    /// parameter at the same block and frame replaced an older one, or this one was older
    /// (newest wins). Full: kPendingCapacity commands wait.
    AddResult add(const TaggedCommand& command) noexcept;

    /// Renders block nextTag() into `out` (`channels` interleaved, the same signal on each)
    /// and moves on to the next.
    RenderStats render(float* out, uint32_t channels, uint32_t frames) noexcept;

    uint64_t nextTag() const noexcept { return state_.blocks; }
    const RenderState& state() const noexcept { return state_; }
    /// The newest sequence number any applied command carried.
    uint64_t lastSequence() const noexcept { return lastSequence_; }
    uint32_t pendingCount() const noexcept { return count_; }
    const TaggedCommand& pendingAt(uint32_t index) const noexcept { return pending_[(head_ + index) % kPendingCapacity]; }

private:
    void apply(const TaggedCommand& command) noexcept;

    TaggedRenderConfig config_{};
    RenderState state_{};
    uint64_t lastSequence_ = 0;
    TaggedCommand pending_[kPendingCapacity] = {};  // a ring, sorted by (tag, offset, sequence)
    uint32_t head_ = 0;
    uint32_t count_ = 0;
};

}  // namespace sustain
