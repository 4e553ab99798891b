#include "hosts/tagged_render.h"

#include "shm/command_order.h"

namespace sustain {
namespace {
bool before(const TaggedCommand& a, const TaggedCommand& b) noexcept {
    if (a.tag != b.tag) return a.tag < b.tag;
    if (a.offset != b.offset) return a.offset < b.offset;
    return a.sequence < b.sequence;
}
}  // namespace

void TaggedRenderer::reset(const RenderState& state) noexcept {
    state_ = state;
    head_ = 0;
    count_ = 0;
    lastSequence_ = 0;
    for (uint64_t sequence : state_.appliedSequence)
        if (isNewer(sequence, lastSequence_)) lastSequence_ = sequence;
}

TaggedRenderer::AddResult TaggedRenderer::add(const TaggedCommand& command) noexcept {
    if (command.tag < state_.blocks) return AddResult::Late;
    // Newest wins among plain changes of one parameter meeting at one block and frame.
    const bool timed = (command.flags & kCommandFlagTimed) != 0;
    uint32_t at = count_;
    for (uint32_t i = 0; i < count_; ++i) {
        TaggedCommand& waiting = pending_[(head_ + i) % kPendingCapacity];
        if (!timed && (waiting.flags & kCommandFlagTimed) == 0 && waiting.tag == command.tag &&
            waiting.offset == command.offset && waiting.param == command.param) {
            if (isNewer(command.sequence, waiting.sequence)) waiting.value = command.value, waiting.sequence = command.sequence;
            return AddResult::Coalesced;
        }
        if (at == count_ && before(command, waiting)) at = i;
    }
    if (count_ == kPendingCapacity) return AddResult::Full;
    for (uint32_t i = count_; i > at; --i)
        pending_[(head_ + i) % kPendingCapacity] = pending_[(head_ + i - 1) % kPendingCapacity];
    pending_[(head_ + at) % kPendingCapacity] = command;
    ++count_;
    return AddResult::Added;
}

void TaggedRenderer::apply(const TaggedCommand& command) noexcept {
    if (command.param >= kParamCount) return;
    const bool timed = (command.flags & kCommandFlagTimed) != 0;
    if (!timed && alreadyHeld(command.sequence, state_.appliedSequence[command.param])) return;
    applyParam(state_, command.param, command.value, config_.rampSamples);
    if (isNewer(command.sequence, state_.appliedSequence[command.param]))
        state_.appliedSequence[command.param] = command.sequence;
    if (isNewer(command.sequence, lastSequence_)) lastSequence_ = command.sequence;
}

RenderStats TaggedRenderer::render(float* out, uint32_t channels, uint32_t frames) noexcept {
    RenderStats stats;
    uint32_t done = 0;
    while (count_ > 0 && pending_[head_].tag <= state_.blocks) {
        const TaggedCommand command = pending_[head_];
        head_ = (head_ + 1) % kPendingCapacity;
        --count_;
        if (command.tag < state_.blocks) continue;  // not reachable: add() refuses late ones
        const uint32_t at = command.offset < frames ? command.offset : frames;
        if (at > done) {
            stats.clipped += renderFrames(state_, config_.voices, config_.sampleRate, out + size_t{done} * channels, channels, at - done).clipped;
            done = at;
        }
        apply(command);
    }
    if (frames > done)
        stats.clipped += renderFrames(state_, config_.voices, config_.sampleRate, out + size_t{done} * channels, channels, frames - done).clipped;
    state_.blocks += 1;
    return stats;
}

}  // namespace sustain
