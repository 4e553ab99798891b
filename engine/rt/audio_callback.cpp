#include "engine/rt/audio_callback.h"

#include <cstring>

#include "engine/rt/callback_timing.h"
#include "engine/rt/rt_guard_hooks.h"
#include "engine/rt/float_mode.h"
#include "engine/rt/stack_prefault.h"
#include "engine/rt/synth.h"
#include "shm/clock.h"
#include "shm/command_order.h"
#include "shm/fault_point.h"
#include "shm/frame_clock.h"
#include "shm/seqlock.h"

namespace sustain {

namespace {

// RT-safe: bounded by kMaxCommandsPerBlock. Keeps the newest command per parameter.
void takeQueuedCommands(CallbackContext& context) noexcept {
    WorkerMetrics& metrics = context.segment->workers[context.slot];
    Command command;
    uint32_t taken = 0;
    while (taken < kMaxCommandsPerBlock && context.queue->try_dequeue(command)) {
        ++taken;
        if ((command.flags & kCommandFlagTimed) != 0) {
            if (context.timedCount < kCallbackTimedCapacity) {
                context.timed[context.timedCount++] = command;
                continue;
            }
            // No room: it cannot wait for its sample; it applies at the start of this block.
            metrics.timedOverflow.fetch_add(1, std::memory_order_relaxed);
            command.flags = static_cast<uint16_t>(command.flags & ~kCommandFlagTimed);
        }
        PendingCommand& pending = context.pending[command.param < kParamCount ? command.param : 0];
        if (pending.valid) {
            if (!isNewer(command.sequence, pending.command.sequence)) continue;
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
bool followActive(CallbackContext& context, uint64_t nowNs, const CurrentCycle& cycle, uint32_t frames) noexcept {
    Segment& segment = *context.segment;
    WorkerSlot& slot = segment.slots[context.slot];
    const uint32_t active = segment.control.activeSlot.load(std::memory_order_acquire);
    const CurrentCycle previousCycle = context.previousCycle;
    context.previousCycle = cycle;
    bool advanced = false;
    // A standby that plays for the active keeps the time itself: it renders on from its own
    // state until it hands back (the active aligns to it meanwhile: adoptStandbyState).
    if (active < kWorkerSlots && active != context.slot && !context.tookOver) {
        const PublishedState& published = segment.state[active];
        PublishedRender candidate;
        // The epoch is read inside the seqlock, with the state it qualifies: a state is
        // taken only from the process that holds the active slot now.
        if (seqlockRead(published.sequence, published.words, candidate) &&
            candidate.epoch == segment.slots[active].epoch.load(std::memory_order_acquire)) {
            // Another active process (a failover, a cold start) numbers its blocks its own
            // way: what we synced from before says nothing about it.
            if (candidate.epoch != context.syncedEpoch) context.syncedThrough = 0;
            if (candidate.state.blocks > context.syncedThrough) {
                context.syncedEpoch = candidate.epoch;
                context.state = candidate.state;
                context.syncedThrough = candidate.state.blocks;
                advanced = true;
                // Commands the active has applied are confirmed: no need to hold them any more.
                for (uint32_t p = 0; p < kParamCount; ++p) {
                    PendingCommand& pending = context.pending[p];
                    if (pending.valid && alreadyHeld(pending.command.sequence, candidate.state.appliedSequence[p]))
                        pending.valid = false;
                }
            }
        }
    }
    if (advanced) {
        // A missed look or two is an order flip in the cycle; a longer stall ends the run,
        // unless this standby played through it and handed back: then the active took this
        // standby's state, and both are in step (a real fault soon after a late active must
        // find the standby ready to take over, not sustaind's slower hang detection).
        if (context.activeStall >= kTakeoverCycles && !context.handedBack) context.syncedRun = 0;
        context.handedBack = false;
        ++context.syncedRun;
        context.activeStall = 0;
        slot.syncedBlocks.fetch_add(1, std::memory_order_relaxed);
        slot.activeStall.store(0, std::memory_order_relaxed);
        return true;
    }
    if (context.activeStall++ == 0) slot.stallSinceNs.store(nowNs, std::memory_order_relaxed);
    slot.activeStall.store(context.activeStall, std::memory_order_relaxed);
    slot.ownBlocks.fetch_add(1, std::memory_order_relaxed);
    // Only a standby in step takes over: one that has just joined the graph sees the active
    // skipped while JACK reorders it, and its blocks would not continue the active's anyway.
    const WorkerSlot& activeSlot = segment.slots[active % kWorkerSlots];
    if (!context.relay && !context.tookOver && context.syncedRun >= kWarmBlocks &&
        playerMissedCycles(activeSlot, cycle, previousCycle, frames, context.activeStall) &&
        claimCycle(segment.output.playClaim, cycle, context.slot, true)) {
        // This cycle is this standby's now; the active, should it run in this cycle after
        // all, finds it claimed and returns silence (playsDirect).
        context.tookOver = true;
        context.activeCallbacksAtTakeover = activeSlot.callbacks.load(std::memory_order_acquire);
        slot.takeoverNs.store(nowNs, std::memory_order_relaxed);
        slot.takeover.store(1, std::memory_order_release);
    }
    return false;
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
        if (isNewer(command.sequence, context.state.appliedSequence[p])) {
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

// RT-safe: a loop over the fixed number of held timed commands.
// A standby that just took the active's state is at the active's frame: every timed command
// due before it is in that state already (the active applied it), so it is dropped here.
void dropTimedBefore(CallbackContext& context, uint64_t frame) noexcept {
    uint32_t kept = 0;
    for (uint32_t i = 0; i < context.timedCount; ++i)
        if (context.timed[i].dueFrame >= frame) context.timed[kept++] = context.timed[i];
    context.timedCount = kept;
}

// RT-safe: bounded by kCallbackTimedCapacity (an insertion sort of at most that many).
// Renders the block in pieces, applying each timed command at its own sample: the piece
// before it is rendered with the old target, the piece after with the new. A timed command
// whose frame has passed (it reached the callback late) applies at the first sample, unless
// a newer value of its parameter is already in force.
RenderStats renderTimed(CallbackContext& context, uint32_t frames, bool active) noexcept {
    RenderState& state = context.state;
    WorkerMetrics& metrics = context.segment->workers[context.slot];
    const uint64_t first = state.frame;
    const uint64_t end = first + frames;
    uint32_t due[kCallbackTimedCapacity];
    uint32_t dueCount = 0;
    uint32_t kept = 0;
    for (uint32_t i = 0; i < context.timedCount; ++i) {
        if (context.timed[i].dueFrame < end) {
            // Insert in order of frame, then sequence (the order they were sent in).
            uint32_t at = dueCount++;
            const Command& c = context.timed[i];
            while (at > 0) {
                const Command& before = context.timed[due[at - 1]];
                if (before.dueFrame < c.dueFrame || (before.dueFrame == c.dueFrame && before.sequence < c.sequence)) break;
                due[at] = due[at - 1];
                --at;
            }
            due[at] = i;
        }
    }
    RenderStats stats;
    uint32_t rendered = 0;
    for (uint32_t d = 0; d < dueCount; ++d) {
        const Command& command = context.timed[due[d]];
        const bool late = command.dueFrame < first;
        const auto offset = late ? 0u : static_cast<uint32_t>(command.dueFrame - first);
        if (offset > rendered) {
            const RenderStats part = renderFrames(state, context.voices, context.sampleRate,
                                                 context.scratch + size_t{rendered} * kAudioChannels, kAudioChannels,
                                                 offset - rendered);
            stats.clipped += part.clipped;
            rendered = offset;
        }
        const uint32_t p = command.param < kParamCount ? command.param : 0;
        if (late && alreadyHeld(command.sequence, state.appliedSequence[p])) continue;  // a newer value is in force
        if (!(context.fading && p == kParamMasterGain)) applyParam(state, p, command.value, context.rampSamples);
        if (isNewer(command.sequence, state.appliedSequence[p])) state.appliedSequence[p] = command.sequence;
        if (active) (late ? metrics.timedLate : metrics.timedApplied).fetch_add(1, std::memory_order_relaxed);
        if (active && late) metrics.timedLateFramesLast.store(first - command.dueFrame, std::memory_order_relaxed);
    }
    if (frames > rendered) {
        const RenderStats part = renderFrames(state, context.voices, context.sampleRate,
                                             context.scratch + size_t{rendered} * kAudioChannels, kAudioChannels,
                                             frames - rendered);
        stats.clipped += part.clipped;
    }
    state.blocks += 1;
    for (uint32_t i = 0; i < context.timedCount; ++i)
        if (context.timed[i].dueFrame >= end) context.timed[kept++] = context.timed[i];
    context.timedCount = kept;
    return stats;
}

// JACK's view of the cycle being run: its frame time and when it began.
struct JackCycle {
    jack_nframes_t frame = 0;
    jack_time_t usecs = 0;
    jack_time_t nextUsecs = 0;
    bool known = false;
};

// RT-safe: jack_get_cycle_times reads the server's timer from shared memory (no lock, no
// system call).
JackCycle readJackCycle(const CallbackContext& context) noexcept {
    JackCycle cycle;
    float periodUsecs = 0.0f;
    jack_client_t* jackClock = context.jackClock.load(std::memory_order_acquire);
    // The frame time is known whenever JACK answers; its times only when they are sane
    // (cycleTimesKnown): after a disturbance JACK's filtered timer can say that the next
    // cycle begins before this one, while the frame time is still this cycle's.
    cycle.known = jackClock != nullptr && context.jackPeriodFrames != 0 &&
                  jack_get_cycle_times(jackClock, &cycle.frame, &cycle.usecs, &cycle.nextUsecs, &periodUsecs) == 0;
    if (!cycle.known && context.fakeCycleFrame != 0) {
        cycle.frame = static_cast<jack_nframes_t>(context.fakeCycleFrame);
        cycle.known = true;  // the frame only: cycleTimesKnown() stays false
        cycle.nextUsecs = 0;
    }
    return cycle;
}

// RT-safe: arithmetic. JACK said when the cycle began and when the next one will (not only
// its frame time): an anchor can be built from it.
bool cycleTimesKnown(const JackCycle& cycle) noexcept { return cycle.known && cycle.nextUsecs > cycle.usecs; }


// RT-safe: arithmetic, or a bounded loop for the fallback; then a seqlock write.
void publishFrameClock(CallbackContext& context, const JackCycle& cycle, uint64_t frame, uint64_t startNs) noexcept {
    FrameAnchor anchor{};
    anchor.frame = frame;
    anchor.epoch = context.startEpoch;
    if (!cycleTimesKnown(cycle) ||
        !jackFrameAnchor(frame, cycle.usecs, cycle.nextUsecs, context.jackMinusMonotonicNs.load(std::memory_order_relaxed),
                         static_cast<int64_t>(startNs), 1e9 / context.sampleRate, context.frameRate, anchor)) {
        const int64_t frameZeroNs =
            context.clock.add(frame, static_cast<int64_t>(startNs), context.sampleRate, context.periodFrames);
        anchor.nsPerFrame = 1e9 / context.sampleRate;
        anchor.startNs = frameZeroNs + static_cast<int64_t>(static_cast<double>(frame) * anchor.nsPerFrame);
        anchor.source = static_cast<uint64_t>(FrameClockSource::Callback);
    }
    publishFrameAnchor(context.segment->clock, context.slot, anchor);
}

// RT-safe: bounded seqlock reads and arithmetic.
// A worker that starts as the active (a cold start after both workers died, a promoted
// exclusive-device standby) takes up the frame numbering where the anchor published last
// says it is at this cycle's start: timed changes already turned into frames, waiting in
// the OSC thread or in this worker's ring, keep their time instead of waiting as long as
// the dead worker had run.
void resumeFrameNumbering(CallbackContext& context, const JackCycle& cycle, uint64_t startNs) noexcept {
    FrameAnchor last{};
    if (!readLatestFrameAnchor(context.segment->clock, last)) return;  // the engine's first start
    const int64_t beganNs = cycleTimesKnown(cycle) ? static_cast<int64_t>(cycle.usecs) * 1000 -
                                                         context.jackMinusMonotonicNs.load(std::memory_order_relaxed)
                                                   : static_cast<int64_t>(startNs);
    const int64_t frame = frameHeardAt(last, beganNs, 0);
    if (frame > static_cast<int64_t>(context.state.frame)) context.state.frame = static_cast<uint64_t>(frame);
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

// RT-safe: an atomic load.
// Is the standby that would cover this worker missing for now: being started (a replacement
// not yet in step), fenced or dead? Not in an engine run without one (the slot stays empty).
bool spareMissing(const CallbackContext& context) noexcept {
    const WorkerSlot& other = context.segment->slots[(context.slot + 1) % kWorkerSlots];
    const auto state = static_cast<WorkerState>(other.state.load(std::memory_order_acquire));
    return state == WorkerState::Starting || state == WorkerState::Fenced || state == WorkerState::Dead;
}

// RT-safe: arithmetic.
// The relay layout's margin while the active renders alone. The output stage plays the
// block the active completed in the previous cycle; a cycle in which the active runs too
// late (a loaded machine; a replacement starting takes CPU too) leaves the stage without a
// block, which a standby in step would have covered. While the spare is missing, the active
// renders one block ahead (once: a second block in one cycle, labelled with that cycle's
// frame time, so that the stage measures and publishes the period of latency it adds) and
// does not hold back. Once a standby is in step again, the stage's trail makes the active
// hold back one block (holdBackForOutput), which restores the one-period margin.
bool renderAheadNow(CallbackContext& context, bool alone) noexcept {
    if (!alone) {
        context.renderedAhead = false;
        return false;
    }
    if (context.renderedAhead || context.fading) return false;
    context.renderedAhead = true;
    return true;
}

// RT-safe: arithmetic.
// JACK cycles since our previous callback in which this worker was not run (JACK skips a
// client that is still busy when a cycle starts, which a late driver wake-up makes likely).
// The block numbers must keep counting JACK's cycles, or the output stage, which plays one
// period behind the active worker, would lose its margin with every skipped cycle and end
// up with no block to play; so the relay layout renders the missed blocks now (at most
// kMaxCatchUpBlocks: a longer absence is a hang, for sustaind to handle).
uint32_t missedCycles(CallbackContext& context, const JackCycle& cycle) noexcept {
    constexpr uint32_t kMaxCatchUpBlocks = 2;
    uint32_t missed = 0;
    if (cycle.known && context.lastCycleKnown && context.jackPeriodFrames != 0) {
        const jack_nframes_t elapsed = cycle.frame - context.lastCycleFrame;  // unsigned: wraps correctly
        const jack_nframes_t periods = (elapsed + context.jackPeriodFrames / 2) / context.jackPeriodFrames;
        if (periods >= 2 && periods <= kMaxCatchUpBlocks + 1) missed = periods - 1;
    }
    context.lastCycleFrame = cycle.frame;
    context.lastCycleKnown = cycle.known;
    return missed;
}

// RT-safe: arithmetic. Has JACK's frame time `now` reached `at` (32-bit, wrapping)?
bool frameReached(jack_nframes_t now, uint64_t at) noexcept {
    return static_cast<int32_t>(now - static_cast<jack_nframes_t>(at)) >= 0;
}

// What the active does this cycle while its standby plays for it (direct layout).
enum class Alignment { None, RenderAligned, AlreadyRendered };

// RT-safe: a bounded seqlock read and a copy.
// Direct layout, the active: while the standby plays for it (JACK did not run it for a few
// cycles: it was late, or is dead), the standby keeps the time and its blocks are what is
// heard; the active takes the standby's state so that it renders the same block in the same
// cycle, and plays on seamlessly once the standby hands back. If the standby has already
// rendered this cycle's block, the active takes its state after it and renders nothing in
// this cycle (its block would be the next cycle's).
Alignment adoptStandbyState(CallbackContext& context, const JackCycle& cycle) noexcept {
    const Segment& segment = *context.segment;
    const uint32_t other = (context.slot + 1) % kWorkerSlots;
    const WorkerSlot& standby = segment.slots[other];
    if (standby.takeover.load(std::memory_order_acquire) == 0) return Alignment::None;
    PublishedRender render;
    if (!seqlockRead(segment.state[other].sequence, segment.state[other].words, render) ||
        render.epoch != standby.epoch.load(std::memory_order_acquire))
        return Alignment::None;
    context.state = render.state;
    const uint64_t renderedIn = standby.lastCycleFrame.load(std::memory_order_acquire);
    const bool already = cycle.known && renderedIn == storedFrame(cycle.frame);
    return already ? Alignment::AlreadyRendered : Alignment::RenderAligned;
}

// RT-safe: atomic loads and stores, arithmetic.
// Direct layout: does this worker's stream carry its block in this cycle? Exactly one worker
// plays in every cycle: the active, unless its standby took over and has not handed back; a
// standby that took over, until the cycle it hands back from. A standby hands back when the
// active runs again (JACK merely did not run it for a few cycles), from the next cycle on.
// Both sides decide by JACK's frame time of the cycle, not by when they run in it, so that
// no cycle has both or neither, in whatever order (or in parallel) JACK runs them.
bool playsDirect(CallbackContext& context, const JackCycle& cycle, bool active) noexcept {
    Segment& segment = *context.segment;
    WorkerSlot& slot = segment.slots[context.slot];
    if (active) {
        if (context.tookOver) {  // promoted: the takeover is official now
            context.tookOver = false;
            context.handbackFrame = 0;
            slot.handbackFrame.store(0, std::memory_order_relaxed);
            slot.takeover.store(0, std::memory_order_release);
        }
        // The active claims each cycle it plays: a standby that took this very cycle over
        // first plays it, and this one returns silence.
        const WorkerSlot& standby = segment.slots[(context.slot + 1) % kWorkerSlots];
        const CurrentCycle current{cycle.known, cycle.frame};
        if (standby.takeover.load(std::memory_order_acquire) == 0)
            return claimCycle(segment.output.playClaim, current, context.slot, false);
        const uint64_t handback = standby.handbackFrame.load(std::memory_order_acquire);
        return handback != 0 && cycle.known && frameReached(cycle.frame, handback) &&
               claimCycle(segment.output.playClaim, current, context.slot, false);
    }
    if (!context.tookOver) return false;
    const uint32_t activeSlot = (context.slot + 1) % kWorkerSlots;
    const bool activeRuns =
        segment.slots[activeSlot].callbacks.load(std::memory_order_acquire) != context.activeCallbacksAtTakeover;
    if (activeRuns && context.handbackFrame == 0) {
        // The active ran again: it was late, not dead. It plays from the next cycle on.
        context.handbackFrame = cycle.known ? storedFrame(cycle.frame + context.jackPeriodFrames) : 1;
        slot.handbackFrame.store(context.handbackFrame, std::memory_order_release);
        slot.handbacks.fetch_add(1, std::memory_order_relaxed);
    }
    if (context.handbackFrame != 0 && (!cycle.known || frameReached(cycle.frame, context.handbackFrame))) {
        context.handedBack = true;
        context.tookOver = false;
        context.handbackFrame = 0;
        slot.handbackFrame.store(0, std::memory_order_relaxed);
        slot.takeover.store(0, std::memory_order_release);
        return false;
    }
    return true;
}

// RT-safe: an atomic add and a log-ring push.
void noteClipped(CallbackContext& context, WorkerSlot& slot, const RenderStats& stats, bool active) noexcept {
    if (stats.clipped == 0 || !active) return;
    slot.clippedSamples.fetch_add(stats.clipped, std::memory_order_relaxed);
    rtLog(*context.log, slot.rtLogDropped, RtEvent::Clipped, stats.clipped);
}

// RT-safe: a bounded copy into the audio ring, under the block's seqlock (shm/layout.h).
void publishBlock(CallbackContext& context, uint64_t number, uint32_t frames, uint64_t startNs,
                  const JackCycle& cycle) noexcept {
    AudioBlock& block = context.segment->audio[context.slot].blocks[number % kAudioRingBlocks];
    const uint64_t begin = seqlockBegin(block.sequence.load(std::memory_order_relaxed));
    block.sequence.store(begin, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    block.tag.store(number + 1, std::memory_order_relaxed);
    block.frames = frames;
    block.epoch.store(context.startEpoch, std::memory_order_relaxed);
    block.startNs.store(startNs, std::memory_order_relaxed);
    block.jackCycleFrame.store(cycle.known ? cycle.frame : 0, std::memory_order_relaxed);
    const uint32_t count = frames * kAudioChannels;
    for (uint32_t i = 0; i < count; ++i) {
        if (i == count / 2) SUSTAIN_FAULT_POINT(FaultPoint::AudioBlockWrite);
        block.samples[i].store(context.scratch[i], std::memory_order_relaxed);
    }
    block.sequence.store(begin + 1, std::memory_order_release);
}

// RT-safe: a copy of one block; silenceStale.
// Direct layout: what this worker's stream carries in this cycle. The worker that plays
// returns its block and, from the cycle it began to play in instead of the other worker
// (a takeover, sustaind's switch, a handback), silences what that worker left in JACK's mix
// (engine/rt/stale_buffer.h); the other returns silence.
void playDirect(CallbackContext& context, float* out, uint32_t frames, bool plays) noexcept {
    Segment& segment = *context.segment;
    const WorkerSlot& other = segment.slots[(context.slot + 1) % kWorkerSlots];
    const bool playsNow = plays && frames <= kMaxRelayFrames;
    if (playsNow) {
        for (uint32_t f = 0; f < frames; ++f)
            for (uint32_t c = 0; c < context.channels; ++c)
                out[size_t{f} * context.channels + c] = context.scratch[size_t{f} * kAudioChannels];
    } else {
        std::memset(out, 0, sizeof(float) * size_t{frames} * context.channels);
    }
    silenceStale(context.stale, other, playsNow, !context.playedLast, frames, segment.output);
    context.playedLast = playsNow;
}

}  // namespace

void renderCallbackBlock(CallbackContext& context, float* out, uint32_t frames, bool underflow) noexcept {
    SUSTAIN_FAULT_POINT(FaultPoint::CallbackEntry);
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
        context.playedLast = false;
        return;
    }

    if (!context.fading && (segment.control.shutdownRequested.load(std::memory_order_acquire) != 0 ||
                            context.stopRequested.load(std::memory_order_acquire) != 0)) {
        rampTo(context.state.master, 0.0, context.fadeSamples);
        context.fading = true;
    }
    const bool active = slot.role.load(std::memory_order_acquire) == static_cast<uint32_t>(WorkerRole::Active);
    takeQueuedCommands(context);
    const JackCycle cycle = readJackCycle(context);
    const uint32_t missed = context.relay ? missedCycles(context, cycle) : 0;
    const bool alone = active && context.relay && spareMissing(context);
    if (active && context.relay && !alone && holdBackForOutput(context)) {
        std::memset(out, 0, sizeof(float) * outSamples);
        slot.callbacks.fetch_add(1, std::memory_order_release);
        slot.lastCallbackNs.store(monotonicNs(), std::memory_order_release);
        context.blocks.fetch_add(1, std::memory_order_release);
        return;
    }
    const bool synced = !active && followActive(context, startNs, CurrentCycle{cycle.known, cycle.frame}, frames);
    const Alignment aligned = active && !context.relay ? adoptStandbyState(context, cycle) : Alignment::None;
    if (synced || aligned != Alignment::None) dropTimedBefore(context, context.state.frame);
    const bool plays = !context.relay && playsDirect(context, cycle, active);
    if (aligned == Alignment::AlreadyRendered) {
        // This cycle's block is the standby's (it plays it): nothing to render or play here.
        playDirect(context, out, frames, false);
        publishCallbackEnd(slot, context.loadSmoothed, startNs, monotonicNs(), frames, context.samplesPerNs);
        context.blocks.fetch_add(1, std::memory_order_release);
        return;
    }
    if (context.fading && context.state.master.target != 0.0) rampTo(context.state.master, 0.0, context.fadeSamples);
    applyPending(context, startNs, active);

    // Blocks of the cycles JACK did not run us in, labelled with those cycles' frame times.
    // A standby that just took the active's state takes its numbering too: nothing to add.
    for (uint32_t m = synced ? 0 : missed; m > 0; --m) {
        JackCycle skipped = cycle;
        skipped.frame = cycle.frame - m * context.jackPeriodFrames;
        const uint64_t skippedNumber = context.state.blocks;
        noteClipped(context, slot, renderTimed(context, frames, active), active);
        publishBlock(context, skippedNumber, frames, startNs, skipped);
        slot.caughtUpBlocks.fetch_add(1, std::memory_order_relaxed);
    }
    if (context.resumeFrameNumbering && active) {
        context.resumeFrameNumbering = false;
        resumeFrameNumbering(context, cycle, startNs);
    }
    const uint64_t number = context.state.blocks;
    if (active) publishFrameClock(context, cycle, context.state.frame, startNs);
    noteClipped(context, slot, renderTimed(context, frames, active), active);
    context.renderedThrough.store(context.state.frame, std::memory_order_release);
    if (context.relay) {
        publishBlock(context, number, frames, startNs, cycle);
        if (renderAheadNow(context, alone)) {
            const uint64_t aheadNumber = context.state.blocks;
            noteClipped(context, slot, renderTimed(context, frames, active), active);
            context.renderedThrough.store(context.state.frame, std::memory_order_release);
            publishBlock(context, aheadNumber, frames, startNs, cycle);
        }
        // The relay layout keeps every worker out of the mix: a dead worker's last
        // buffer, which JACK keeps mixing until it drops the client, is silence.
        std::memset(out, 0, sizeof(float) * outSamples);
    } else {
        // A standby that does not play shadows in silence; so does an active whose callback
        // ran so late that the standby took over meanwhile.
        playDirect(context, out, frames,
                   plays && (!cycle.known || stillPlays(segment.output.playClaim, context.slot)));
    }
    if (context.fading && !context.fadedOut && context.state.master.remaining == 0 &&
        context.state.master.current == 0.0) {
        context.fadedOut = true;
        slot.fadedOut.store(1, std::memory_order_release);
    }

    // Publish the end-of-block state for the standby and for the status monitor.
    PublishedState& published = segment.state[context.slot];
    const PublishedRender render{context.startEpoch, context.state};
    seqlockWrite(published.sequence, published.words, render, FaultPoint::PublishedStateWrite);
    const uint64_t endNs = monotonicNs();
    published.heartbeatNs.store(endNs, std::memory_order_release);
    slot.lastBlock.store(context.state.blocks, std::memory_order_release);
    slot.lastCycleFrame.store(cycle.known ? storedFrame(cycle.frame) : 0, std::memory_order_release);

    publishCallbackEnd(slot, context.loadSmoothed, startNs, endNs, frames, context.samplesPerNs);
    context.blocks.fetch_add(1, std::memory_order_release);
}

int paAudioCallback(const void* /*input*/, void* output, unsigned long frames,
                    const PaStreamCallbackTimeInfo* /*timeInfo*/, PaStreamCallbackFlags statusFlags,
                    void* userData) noexcept {
    RtGuardScope guard;
    auto& context = *static_cast<CallbackContext*>(userData);
    flushDenormals();
    touchCallbackStackOnce(context.stackTouched);
    context.audioThread.note();
    renderCallbackBlock(context, static_cast<float*>(output), static_cast<uint32_t>(frames),
                        (statusFlags & paOutputUnderflow) != 0);
    return paContinue;
}

}  // namespace sustain
