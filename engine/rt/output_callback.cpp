#include "engine/rt/output_callback.h"

#include <cmath>
#include <cstring>

#include "engine/rt/callback_timing.h"
#include "engine/rt/rt_guard_hooks.h"
#include "engine/rt/float_mode.h"
#include "engine/rt/stack_prefault.h"
#include "engine/rt/stale_buffer.h"
#include "shm/clock.h"
#include "shm/fault_point.h"
#include "shm/spsc_ring.h"

namespace sustain {

namespace {

/// Blocks the play position may trail the newest block before it is re-locked. Generous on
/// purpose: when this stage misses a cycle that the workers did not (a JACK xrun, a graph
/// change), it trails by one more block; catching up would be a jump in the sound, so it
/// keeps the extra period of latency instead (visible as OutputMetrics::lagBlocks).
constexpr uint64_t kMaxLag = kAudioRingBlocks - 3;

/// Cycles in a row the stage must trail before the active worker is asked to hold back.
constexpr uint32_t kTrailCycles = 32;

// RT-safe: jack_get_cycle_times reads JACK's shared memory.
// The JACK cycle this callback runs in, when the stage has a JACK clock.
CurrentCycle currentCycle(const OutputContext& context) noexcept {
    CurrentCycle cycle;
    jack_client_t* jackClock = context.jackClock.load(std::memory_order_acquire);
    jack_time_t usecs = 0, nextUsecs = 0;
    float periodUsecs = 0.0f;
    cycle.known = jackClock != nullptr &&
                  jack_get_cycle_times(jackClock, &cycle.frame, &usecs, &nextUsecs, &periodUsecs) == 0;
    return cycle;
}

// RT-safe: arithmetic on two atomic loads.
// Was `block` rendered in the cycle this callback runs in (rather than an earlier one)?
// JACK's frame times say so exactly. Without them, the start times: a block started less
// than ~3/4 of a period ago is taken as this cycle's. That guess fails when the driver
// wakes late and starts the next cycle at once (cycles closer than a period apart), which
// is why the frame times come first.
bool renderedThisCycle(const AudioBlock& block, const CurrentCycle& cycle, uint64_t nowNs, double periodNs) noexcept {
    const jack_nframes_t renderedAt = block.jackCycleFrame.load(std::memory_order_relaxed);
    if (cycle.known && renderedAt != 0) return renderedAt == cycle.frame;
    return static_cast<double>(nowNs - block.startNs.load(std::memory_order_relaxed)) < 0.75 * periodNs;
}

// RT-safe: a few atomic loads.
// The newest block number + 1 completed by any live worker (a hung active stops counting;
// its standby renders on), and which worker that is.
uint64_t newestCompleted(const Segment& segment, uint32_t& slot) noexcept {
    uint64_t newest = 0;
    for (uint32_t s = 0; s < kWorkerSlots; ++s) {
        const auto state = static_cast<WorkerState>(segment.slots[s].state.load(std::memory_order_acquire));
        if (state != WorkerState::Active && state != WorkerState::Warm && state != WorkerState::Starting) continue;
        const uint64_t completed = segment.slots[s].lastBlock.load(std::memory_order_acquire);
        if (completed > newest) {
            newest = completed;
            slot = s;
        }
    }
    return newest;
}

// RT-safe: a few atomic loads.
// The worker whose blocks set the play position: the active, once it runs as such (a standby
// may be ahead of it, or after a cold start still count in the numbering of a process that is
// gone). A standby sustaind has just promoted counts as running as the active: it renders as
// the active from its next callback on (its role says so), while its state says `warm` until
// its control thread next loops. While the active is fenced or dead and sustaind has not
// promoted the standby yet (it takes a moment, or is itself stopped), the standby: its blocks
// are the ones played then, in the same numbering, and without it no position could be found
// until the promotion. kWorkerSlots when there is none.
uint32_t positionSource(const Segment& segment) noexcept {
    const uint32_t active = segment.control.activeSlot.load(std::memory_order_acquire) % kWorkerSlots;
    const auto activeState = static_cast<WorkerState>(segment.slots[active].state.load(std::memory_order_acquire));
    if (activeState == WorkerState::Active) return active;
    if (activeState == WorkerState::Warm &&
        segment.slots[active].role.load(std::memory_order_acquire) == static_cast<uint32_t>(WorkerRole::Active))
        return active;
    if (activeState != WorkerState::Fenced && activeState != WorkerState::Dead) return kWorkerSlots;
    const uint32_t standby = (active + 1) % kWorkerSlots;
    const auto standbyState = static_cast<WorkerState>(segment.slots[standby].state.load(std::memory_order_acquire));
    const bool rendersInStep = standbyState == WorkerState::Warm || standbyState == WorkerState::Starting;
    return rendersInStep && segment.slots[standby].role.load(std::memory_order_acquire) ==
                                static_cast<uint32_t>(WorkerRole::Standby)
               ? standby
               : kWorkerSlots;
}

// RT-safe: a few atomic loads.
// Locks the play position one period behind the worker that sets it (positionSource): the
// block it completed in the previous cycle is always there, whatever the order of clients in
// this cycle. Whether the newest block is from this cycle or the previous one: see
// renderedThisCycle; when unsure, the older block is chosen, which costs a period of
// latency, never a sample.
bool lockPlayPosition(OutputContext& context, const CurrentCycle& cycle, uint64_t nowNs, uint32_t frames) noexcept {
    Segment& segment = *context.segment;
    OutputMetrics& output = segment.output;
    const uint32_t source = positionSource(segment);
    if (source >= kWorkerSlots) return false;
    const uint64_t completed = segment.slots[source].lastBlock.load(std::memory_order_acquire);
    if (completed < 2) return false;
    const double periodNs = static_cast<double>(frames) / context.samplesPerNs;
    // A worker that stopped (not yet marked dead) is no clock to lock to.
    const uint64_t beatNs = segment.slots[source].lastCallbackNs.load(std::memory_order_acquire);
    if (nowNs > beatNs && static_cast<double>(nowNs - beatNs) > 2.0 * periodNs) return false;
    const uint64_t newest = completed - 1;
    const AudioBlock& block = segment.audio[source].blocks[newest % kAudioRingBlocks];
    const bool fromThisCycle = renderedThisCycle(block, cycle, nowNs, periodNs);
    output.nextBlock.store(fromThisCycle ? newest - 1 : newest, std::memory_order_relaxed);
    output.synced.store(1, std::memory_order_release);
    return true;
}

// RT-safe: a few atomic loads.
// Periods of latency beyond the one the relay layout costs: how far `played` trails the
// active worker's block of the previous cycle. When this stage misses a cycle that the
// workers did not (an xrun, a graph change when a worker starts), it trails by one more;
// the active worker then holds back one block so that it catches up without a jump.
uint64_t extraLatency(const Segment& segment, uint64_t played, const CurrentCycle& cycle, uint64_t nowNs,
                      uint32_t frames, double samplesPerNs) noexcept {
    const uint32_t active = segment.control.activeSlot.load(std::memory_order_acquire) % kWorkerSlots;
    if (segment.slots[active].state.load(std::memory_order_acquire) != static_cast<uint32_t>(WorkerState::Active))
        return 0;
    const uint64_t completed = segment.slots[active].lastBlock.load(std::memory_order_acquire);
    if (completed < 2) return 0;
    const AudioBlock& newest = segment.audio[active].blocks[(completed - 1) % kAudioRingBlocks];
    const double periodNs = static_cast<double>(frames) / samplesPerNs;
    const bool ranThisCycle = renderedThisCycle(newest, cycle, nowNs, periodNs);
    const uint64_t previousCycleBlock = ranThisCycle ? completed - 2 : completed - 1;
    return previousCycleBlock > played ? previousCycleBlock - played : 0;
}

// RT-safe: arithmetic and two atomic operations.
// The block played now was rendered `periods` cycles ago: JACK's frame times of the two
// cycles say so exactly; without them, the start times (a callback starts anywhere in its
// cycle, so those can be off by one).
void followRelayDelay(OutputContext& context, const AudioBlock& block, const CurrentCycle& cycle, uint64_t startNs,
                      uint32_t frames) noexcept {
    constexpr uint32_t kDelayCycles = 4;
    uint32_t periods = 0;
    const jack_nframes_t renderedAt = block.jackCycleFrame.load(std::memory_order_relaxed);
    if (cycle.known && renderedAt != 0) {
        const jack_nframes_t elapsed = cycle.frame - renderedAt;  // unsigned: wraps correctly
        if (elapsed > frames * kAudioRingBlocks) return;
        periods = (elapsed + frames / 2) / frames;
    } else {
        const double periodNs = static_cast<double>(frames) / context.samplesPerNs;
        const double elapsed = static_cast<double>(startNs) - static_cast<double>(block.startNs.load(std::memory_order_relaxed));
        if (elapsed < 0.0 || elapsed > periodNs * kAudioRingBlocks) return;
        periods = static_cast<uint32_t>(std::lround(elapsed / periodNs));
    }
    context.delayAgreeing = periods == context.delayCandidate ? context.delayAgreeing + 1 : 1;
    context.delayCandidate = periods;
    const uint32_t reported = context.reportedLatencyFrames.load(std::memory_order_relaxed);
    if (context.delayAgreeing < kDelayCycles || periods == context.delayPublished || reported == 0) return;
    context.delayPublished = periods;
    context.segment->clock.reportedLatencyFrames.store(reported, std::memory_order_relaxed);
    context.segment->clock.playLatencyFrames.store(reported + periods * frames, std::memory_order_release);
}

// RT-safe: atomic loads and arithmetic.
// Has the playing stage missed the cycles before this one (dead, stopped, or not run by
// JACK)? The rule is playerMissedCycles's; here the stall count it falls back on.
bool writerMissedCycles(OutputContext& context, uint32_t writer, const CurrentCycle& cycle,
                        const CurrentCycle& ownPrevious, uint32_t frames) noexcept {
    const WorkerSlot& playing = context.segment->outputs[writer];
    const uint64_t callbacks = playing.callbacks.load(std::memory_order_acquire);
    context.writerStall = callbacks == context.lastWriterCallbacks ? context.writerStall + 1 : 0;
    context.lastWriterCallbacks = callbacks;
    return playerMissedCycles(playing, cycle, ownPrevious, frames, context.writerStall);
}

// RT-safe: atomic loads and a copy.
// Block `number` as a fenced worker completed it before its fence (shm/fencing.h): the
// standby skips a number when it takes the active's newer state, and if the active is fenced
// right then, its ring is the only place that block exists.
bool readFencedBlock(const Segment& segment, uint64_t number, uint32_t frames, float* out, uint32_t channels) noexcept {
    for (uint32_t s = 0; s < kWorkerSlots; ++s) {
        const WorkerSlot& slot = segment.slots[s];
        const uint64_t epoch = slot.fencedEpoch.load(std::memory_order_acquire);
        if (epoch == 0 || number >= slot.fencedBelowBlock.load(std::memory_order_relaxed)) continue;
        if (readAudioBlock(segment.audio[s], number, epoch, frames, out, channels)) return true;
    }
    return false;
}

bool blocksEqual(const float* a, const float* b, uint32_t count) noexcept {
    return std::memcmp(a, b, sizeof(float) * count) == 0;
}

}  // namespace

bool readAudioBlock(const AudioRing& ring, uint64_t number, uint64_t epoch, uint32_t frames, float* out,
                    uint32_t channels) noexcept {
    const AudioBlock& block = ring.blocks[number % kAudioRingBlocks];
    const uint64_t before = block.sequence.load(std::memory_order_acquire);
    if ((before & 1) != 0 || block.tag.load(std::memory_order_relaxed) != number + 1 ||
        block.epoch.load(std::memory_order_relaxed) != epoch || block.frames != frames)
        return false;
    for (uint32_t f = 0; f < frames; ++f) {
        if (f == frames / 2) SUSTAIN_FAULT_POINT(FaultPoint::OutputChoice);
        const float left = block.samples[size_t{f} * kAudioChannels].load(std::memory_order_relaxed);
        const float right = block.samples[size_t{f} * kAudioChannels + 1].load(std::memory_order_relaxed);
        if (channels == 1) {
            out[f] = left;
        } else {
            out[size_t{f} * channels] = left;
            out[size_t{f} * channels + 1] = right;
            for (uint32_t c = 2; c < channels; ++c) out[size_t{f} * channels + c] = 0.0f;
        }
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    return block.sequence.load(std::memory_order_relaxed) == before;
}

void renderOutputBlock(OutputContext& context, float* out, uint32_t frames) noexcept {
    const uint64_t startNs = monotonicNs();
    Segment& segment = *context.segment;
    WorkerSlot& me = segment.outputs[context.slot];
    OutputMetrics& output = segment.output;
    const size_t outSamples = static_cast<size_t>(frames) * context.channels;
    std::memset(out, 0, sizeof(float) * outSamples);
    const CurrentCycle cycleNow = currentCycle(context);
    const CurrentCycle previousCycle = context.previousCycle;
    context.previousCycle = cycleNow;

    const bool fenced = me.epoch.load(std::memory_order_acquire) != context.startEpoch;
    uint32_t writer = output.writerSlot.load(std::memory_order_acquire);
    if (!fenced && writer != context.slot && writer < kOutputSlots) {
        // A standby output stage: watch the playing one; take over when it stops running.
        // The claim of this cycle first: the playing stage may be running this very cycle
        // after all (it missed the previous one only), and then it keeps it.
        if (writerMissedCycles(context, writer, cycleNow, previousCycle, frames) &&
            claimCycle(output.playClaim, cycleNow, context.slot, true) &&
            output.writerSlot.compare_exchange_strong(writer, context.slot, std::memory_order_acq_rel)) {
            output.takeovers.fetch_add(1, std::memory_order_relaxed);
            writer = context.slot;
        }
    } else if (!fenced && writer == context.slot && !claimCycle(output.playClaim, cycleNow, context.slot, false)) {
        writer = (context.slot + 1) % kOutputSlots;  // the other stage took this cycle over: it plays it
    }
    // Playing from this cycle on, whoever decided it (this stage above, or sustaind when the
    // other stage died): silence what that stage left in JACK's mix, in every cycle this one
    // plays while JACK still mixes it. A stage that does not play returns silence (`out`
    // was cleared above).
    const bool plays = !fenced && writer == context.slot;
    const bool otherPlayedBefore = context.lastWriter != context.slot && context.lastWriter < kOutputSlots;
    silenceStale(context.stale, segment.outputs[(context.slot + 1) % kOutputSlots], plays, otherPlayedBefore, frames,
                 output);
    context.lastWriter = writer;
    // A stage that does not play has published nothing that holds: when it plays again it
    // publishes its own delay as soon as it has measured it.
    if (writer != context.slot) context.delayPublished = kDelayUnpublished;
    if (plays && frames <= kMaxRelayFrames && context.stopRequested.load() == 0 &&
        (output.synced.load(std::memory_order_acquire) != 0 || lockPlayPosition(context, cycleNow, startNs, frames))) {
        const uint64_t number = output.nextBlock.load(std::memory_order_relaxed);
        bool relock = false;
        uint32_t source = 2;
        const uint32_t active = segment.control.activeSlot.load(std::memory_order_acquire) % kWorkerSlots;
        const uint32_t standby = (active + 1) % kWorkerSlots;
        const uint64_t activeEpoch = segment.slots[active].epoch.load(std::memory_order_acquire);
        const uint64_t standbyEpoch = segment.slots[standby].epoch.load(std::memory_order_acquire);
        const uint64_t cycle = output.cycles.load(std::memory_order_relaxed);
        if (readAudioBlock(segment.audio[active], number, activeEpoch, frames, out, context.channels)) {
            output.fromActive.fetch_add(1, std::memory_order_relaxed);
            source = 0;
            // Is the standby in step? Compare its block of the same number, when it has one.
            if (context.channels <= 2 &&
                readAudioBlock(segment.audio[standby], number, standbyEpoch, frames, context.scratch, context.channels)) {
                output.compared.fetch_add(1, std::memory_order_relaxed);
                if (blocksEqual(out, context.scratch, static_cast<uint32_t>(outSamples))) {
                    output.matched.fetch_add(1, std::memory_order_relaxed);
                    output.lastMatchCycle.store(cycle, std::memory_order_relaxed);
                }
            }
        } else if (readAudioBlock(segment.audio[standby], number, standbyEpoch, frames, out, context.channels)) {
            output.fromStandby.fetch_add(1, std::memory_order_relaxed);
            source = 1;
            output.lastFromStandbyCycle.store(cycle, std::memory_order_relaxed);
        } else if (readFencedBlock(segment, number, frames, out, context.channels)) {
            output.fromFenced.fetch_add(1, std::memory_order_relaxed);
        } else {
            std::memset(out, 0, sizeof(float) * outSamples);
            output.unfilled.fetch_add(1, std::memory_order_relaxed);
            // Ahead of the active (it has not rendered block `number` yet: later in this
            // cycle, or the play position got ahead of it): wait for it rather than skip it,
            // and never run away from the worker that renders.
            if (segment.slots[active].lastBlock.load(std::memory_order_acquire) <= number) relock = true;
        }
        if (source < 2) {
            const AudioRing& ring = segment.audio[source == 0 ? active : standby];
            followRelayDelay(context, ring.blocks[number % kAudioRingBlocks], cycleNow, startNs, frames);
        }
        // Re-lock when the numbering moved away (a cold start renumbers from 0, or this
        // stage fell behind by more than the ring holds).
        uint32_t freshest = 0;
        const uint64_t completed = newestCompleted(segment, freshest);
        // Only a trail seen in many cycles in a row counts: a single late worker must not
        // make the active hold back a block it would then be missing.
        const uint64_t extra = extraLatency(segment, number, cycleNow, startNs, frames, context.samplesPerNs);
        context.trailingCycles = extra > 0 ? context.trailingCycles + 1 : 0;
        output.lagBlocks.store(context.trailingCycles >= kTrailCycles ? extra : 0, std::memory_order_relaxed);
        if (relock || (completed != 0 && (completed + kMaxLag < number + 1 || completed > number + 1 + kMaxLag))) {
            output.synced.store(0, std::memory_order_relaxed);
            output.resyncs.fetch_add(1, std::memory_order_relaxed);
        } else {
            output.nextBlock.store(number + 1, std::memory_order_relaxed);
        }
        output.cycles.store(cycle + 1, std::memory_order_release);
        if (context.trace != nullptr) {
            OutputTraceRecord record{};
            record.cycle = cycle;
            record.number = number;
            record.activeLast = segment.slots[active].lastBlock.load(std::memory_order_relaxed);
            record.standbyLast = segment.slots[standby].lastBlock.load(std::memory_order_relaxed);
            record.startNs = startNs;
            const uint32_t from = source == 1 ? standby : active;
            record.blockStartNs = segment.audio[from].blocks[number % kAudioRingBlocks].startNs.load(std::memory_order_relaxed);
            record.source = source;
            record.activeSlot = active;
            record.lag = static_cast<uint32_t>(output.lagBlocks.load(std::memory_order_relaxed));
            SpscRing<OutputTraceRecord>(context.trace->indices, context.trace->slots).tryPush(record);
        }
    } else if (plays && context.stopRequested.load() == 0 && output.cycles.load(std::memory_order_relaxed) != 0) {
        // It had a place and lost it (a re-lock), and no worker renders that it could lock
        // to: a cycle without any block, like one whose block was found nowhere.
        output.unfilled.fetch_add(1, std::memory_order_relaxed);
    }

    // A callback that ran so late that the other stage took over meanwhile returns silence:
    // its block would be mixed beside the other's.
    if (plays && cycleNow.known && !stillPlays(output.playClaim, context.slot)) std::memset(out, 0, sizeof(float) * outSamples);
    me.lastCycleFrame.store(cycleNow.known ? storedFrame(cycleNow.frame) : 0, std::memory_order_release);
    publishCallbackEnd(me, context.loadSmoothed, startNs, monotonicNs(), frames, context.samplesPerNs);
    context.blocks.fetch_add(1, std::memory_order_release);
}

int paOutputCallback(const void* /*input*/, void* output, unsigned long frames,
                     const PaStreamCallbackTimeInfo* /*timeInfo*/, PaStreamCallbackFlags statusFlags,
                     void* userData) noexcept {
    RtGuardScope guard;
    auto& context = *static_cast<OutputContext*>(userData);
    flushDenormals();
    touchCallbackStackOnce(context.stackTouched);
    context.audioThread.note();
    if ((statusFlags & paOutputUnderflow) != 0)
        context.segment->outputs[context.slot].xruns.fetch_add(1, std::memory_order_relaxed);
    renderOutputBlock(context, static_cast<float*>(output), static_cast<uint32_t>(frames));
    return paContinue;
}

}  // namespace sustain
