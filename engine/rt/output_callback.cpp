#include "engine/rt/output_callback.h"

#include <cmath>
#include <cstring>

#include "engine/rt/callback_timing.h"
#include "engine/rt/rt_guard_hooks.h"
#include "shm/clock.h"
#include "shm/fault_point.h"
#include "shm/spsc_ring.h"

namespace sustain {

namespace {

/// The JACK cycle a callback runs in (JACK's frame time at its start), when known.
struct CurrentCycle {
    bool known = false;
    jack_nframes_t frame = 0;
};

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
// Locks the play position one period behind the active worker: the block it completed in
// the previous cycle is always there, whatever the order of clients in this cycle. Whether
// the newest block is from this cycle or the previous one: see renderedThisCycle; when
// unsure, the older block is chosen, which costs a period of latency, never a sample.
bool lockPlayPosition(OutputContext& context, const CurrentCycle& cycle, uint64_t nowNs, uint32_t frames) noexcept {
    Segment& segment = *context.segment;
    OutputMetrics& output = segment.output;
    // Lock to the active worker only, once it runs as such: a standby may be ahead of it, or
    // (after a cold start) still count in the numbering of a process that is gone.
    const uint32_t source = segment.control.activeSlot.load(std::memory_order_acquire) % kWorkerSlots;
    if (segment.slots[source].state.load(std::memory_order_acquire) != static_cast<uint32_t>(WorkerState::Active))
        return false;
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
// Has the playing stage missed kTakeoverCycles - 1 cycles in a row (dead, stopped, or not
// run by JACK)? JACK's frame times say so exactly, whatever order the two stages run in
// within a cycle: the playing stage stamps each cycle it ran in (WorkerSlot::lastCycleFrame).
// So a dead stage is replaced in the first cycle after the one it missed, the least JACK's
// physics allow (that cycle mixed its stale buffer alone). A stage that was only late (JACK
// skips a late client for a cycle about once a second on a loaded machine) hands over
// without a wrong sample: see yieldPlayedBuffer. Without JACK's frame times: its callback
// count has not moved in kTakeoverCycles of this stage's callbacks in a row.
bool writerMissedCycles(OutputContext& context, uint32_t writer, const CurrentCycle& cycle, uint32_t frames) noexcept {
    const WorkerSlot& playing = context.segment->outputs[writer];
    const uint64_t callbacks = playing.callbacks.load(std::memory_order_acquire);
    context.writerStall = callbacks == context.lastWriterCallbacks ? context.writerStall + 1 : 0;
    context.lastWriterCallbacks = callbacks;
    const uint64_t stamped = playing.lastCycleFrame.load(std::memory_order_acquire);
    if (cycle.known && stamped != 0) {
        const auto ranIn = static_cast<jack_nframes_t>(stamped);
        return frameAtOrAfter(cycle.frame, ranIn + kTakeoverCycles * frames);
    }
    return context.writerStall >= kTakeoverCycles;
}

// RT-safe: atomic loads and one CAS.
// Claims the JACK cycle this callback runs in for this stage (OutputMetrics::playClaim):
// true if this stage plays it. The playing stage claims every cycle it runs in unless the
// other has claimed it already (then it took over); a stage taking over claims a cycle only
// if nobody has yet (`takingOver`), so that a late playing stage that does run in this
// cycle keeps it. Either way exactly one stage plays a cycle, whatever their order.
// Without JACK's frame times there is nothing to claim by: the role alone decides. Bounded:
// the word changes at most once per cycle per stage, so a few attempts always settle it;
// should they not, the role decides (the playing stage plays, a takeover waits).
bool claimCycle(OutputMetrics& output, const CurrentCycle& cycle, uint32_t slot, bool takingOver) noexcept {
    if (!cycle.known) return true;
    const uint64_t mine = (storedFrame(cycle.frame) << 1) | slot;
    uint64_t claim = output.playClaim.load(std::memory_order_acquire);
    for (int attempt = 0; attempt < 4; ++attempt) {
        if (claim != 0 && static_cast<jack_nframes_t>(claim >> 1) == cycle.frame) return claim == mine;
        if (output.playClaim.compare_exchange_strong(claim, mine, std::memory_order_acq_rel)) return true;
    }
    return !takingOver;
}

// RT-safe: arithmetic. The channels a stage's kept buffers hold (`stale`, `returnedSamples`):
// the two the workers render; a device's further channels are always silent.
uint32_t keptChannels(const OutputContext& context) noexcept {
    return context.channels < kAudioChannels ? context.channels : kAudioChannels;
}

// Cycles a stale buffer is cancelled at most: JACK drops a dead client within 8-17 ms (and
// sustaind disconnects its ports sooner), so this bound is only reached if something is
// wrong; then subtracting no more is the safer error.
constexpr uint32_t kMaxCancelCycles = 256;

// RT-safe: atomic loads and the copy of one block.
// This stage just took over from `previous`. JACK keeps mixing the last buffer `previous`
// returned until its ports leave the graph (JACK drops the dead client, or sustaind
// disconnects it): from this cycle on, subtract that buffer while it is mixed, so that the
// sum is exactly the block that should be heard. Its last buffer is known from
// WorkerSlot::lastOutput and the audio ring. When anything is unknown (no JACK ports to
// watch, the block rewritten since), nothing is subtracted: a subtraction of a buffer that
// is not mixed would be a full-scale click, a stale buffer left alone is what JACK does anyway.
void beginCancelling(OutputContext& context, uint32_t previous, uint32_t frames, const CurrentCycle& cycle) noexcept {
    const Segment& segment = *context.segment;
    const WorkerSlot& peer = segment.outputs[previous];
    context.cancelling = false;
    // The ports of the last process seen running in that slot: the one that played (sustaind
    // may already have reset the slot for a replacement, which is not looked up before it runs).
    const int32_t pid = context.peerPortsPid.load(std::memory_order_acquire);
    if (pid <= 0) return;
    const uint64_t last = peer.lastOutput.load(std::memory_order_acquire);
    if (last == 0) return;  // it returned silence: there is nothing to cancel
    const uint64_t number = (last >> 1) - 1;
    const AudioRing& ring = segment.audio[last & 1];
    const uint64_t epoch = ring.blocks[number % kAudioRingBlocks].epoch.load(std::memory_order_relaxed);
    if (!cycle.known || !readAudioBlock(ring, number, epoch, frames, context.stale, keptChannels(context))) return;
    context.cancelling = true;
    context.cancelFrom = previous;
    context.cancelPid = pid;
    context.cancelFromFrame = cycle.frame;
    context.cancelCycles = 0;
    context.segment->output.staleCancellations.fetch_add(1, std::memory_order_relaxed);
}

// RT-safe: jack_port_connected reads the server's graph in shared memory (no lock, no
// system call; in a JACK process thread it never waits for a pending graph change).
// Subtracts the stale buffer, channel by channel, from `out` while that channel's port is
// still connected. Measured with JACK2 1.9.21: the connection count a client reads in its
// process callback is the one with which JACK mixes that cycle's buffers, so the switch back
// to the plain block falls on the exact cycle (docs/failover.md). Ends for good once no port
// is connected, in the cycle after the one in which the other stage ran again (it was late,
// not dead: in that cycle it returned its last buffer once more, from the next on silence;
// see yieldPlayedBuffer), when its ports were looked up for another process, after
// kMaxCancelCycles, or in a cycle without JACK's frame time (nothing then tells a yield).
void cancelStale(OutputContext& context, float* out, uint32_t frames, const CurrentCycle& cycle) noexcept {
    if (!context.cancelling) return;
    const WorkerSlot& peer = context.segment->outputs[context.cancelFrom];
    // A yield stamped in the takeover's cycle or later (it may come in that very cycle,
    // before or after this stage read it), and in an earlier cycle than this one.
    const uint64_t yielded = peer.yieldedCycleFrame.load(std::memory_order_acquire);
    const auto yieldFrame = static_cast<jack_nframes_t>(yielded);
    const bool ranAgain = yielded != 0 && frameAtOrAfter(yieldFrame, context.cancelFromFrame) &&
                          cycle.frame != yieldFrame && frameAtOrAfter(cycle.frame, yieldFrame);
    if (!cycle.known || ranAgain || context.peerPortsPid.load(std::memory_order_acquire) != context.cancelPid ||
        context.cancelCycles >= kMaxCancelCycles) {
        context.cancelling = false;
        return;
    }
    bool anyConnected = false;
    const uint32_t kept = keptChannels(context);
    for (uint32_t c = 0; c < kept; ++c) {
        jack_port_t* port = context.peerPorts[c].load(std::memory_order_acquire);
        if (port == nullptr || jack_port_connected(port) <= 0) continue;
        anyConnected = true;
        for (uint32_t f = 0; f < frames; ++f)
            out[size_t{f} * context.channels + c] -= context.stale[size_t{f} * kept + c];
    }
    if (!anyConnected) {
        context.cancelling = false;
        return;
    }
    ++context.cancelCycles;
    context.segment->output.staleCancelledCycles.fetch_add(1, std::memory_order_relaxed);
}

// RT-safe: a copy of one block and an atomic store.
// This stage played in its previous callback and the other one plays now (it took over
// because this one missed cycles; this one was late, not dead). The other stage subtracts
// this one's last buffer in every cycle up to and including the one this stamp names, so
// this stage returns that very buffer once more in this cycle (the sum is then the block
// that should be heard) and silence from the next, when the other one has seen the stamp.
void yieldPlayedBuffer(OutputContext& context, WorkerSlot& me, float* out, uint32_t frames,
                       const CurrentCycle& cycle) noexcept {
    const uint32_t kept = keptChannels(context);
    for (uint32_t f = 0; f < frames; ++f)
        for (uint32_t c = 0; c < kept; ++c) out[size_t{f} * context.channels + c] = context.returnedSamples[size_t{f} * kept + c];
    if (cycle.known) me.yieldedCycleFrame.store(storedFrame(cycle.frame), std::memory_order_release);
}

// RT-safe: a copy of one block. What this stage returned, for yieldPlayedBuffer.
void keepReturnedBuffer(OutputContext& context, const float* out, uint32_t frames) noexcept {
    const uint32_t kept = keptChannels(context);
    for (uint32_t f = 0; f < frames; ++f)
        for (uint32_t c = 0; c < kept; ++c) context.returnedSamples[size_t{f} * kept + c] = out[size_t{f} * context.channels + c];
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
    uint64_t returned = 0;  // for WorkerSlot::lastOutput: silence unless a block is played

    const bool fenced = me.epoch.load(std::memory_order_acquire) != context.startEpoch;
    uint32_t writer = output.writerSlot.load(std::memory_order_acquire);
    if (!fenced && writer != context.slot && writer < kOutputSlots) {
        // A standby output stage: watch the playing one; take over when it stops running.
        // The claim of this cycle first: the playing stage may be running this very cycle
        // after all (it missed the previous one only), and then it keeps it.
        if (writerMissedCycles(context, writer, cycleNow, frames) && claimCycle(output, cycleNow, context.slot, true) &&
            output.writerSlot.compare_exchange_strong(writer, context.slot, std::memory_order_acq_rel)) {
            output.takeovers.fetch_add(1, std::memory_order_relaxed);
            writer = context.slot;
        }
    } else if (!fenced && writer == context.slot && !claimCycle(output, cycleNow, context.slot, false)) {
        writer = (context.slot + 1) % kOutputSlots;  // the other stage took this cycle over: it plays it
    }
    // Playing from this cycle on, whoever decided it (this stage above, or sustaind when the
    // other stage died): cancel what that stage left in JACK's mix.
    if (!fenced && writer == context.slot && context.lastWriter != context.slot && context.lastWriter < kOutputSlots)
        beginCancelling(context, context.lastWriter, frames, cycleNow);
    // What this stage returned in its previous callback (it writes its own lastOutput only).
    const uint64_t returnedBefore = me.lastOutput.load(std::memory_order_relaxed);
    const bool yielding = context.lastWriter == context.slot && writer != context.slot && returnedBefore != 0 &&
                          frames <= kMaxRelayFrames;
    context.lastWriter = writer;
    // A stage that does not play has published nothing that holds: when it plays again it
    // publishes its own delay as soon as it has measured it.
    if (writer != context.slot) context.delayPublished = kDelayUnpublished;
    if (!fenced && writer == context.slot && frames <= kMaxRelayFrames && context.stopRequested.load() == 0 &&
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
        } else {
            std::memset(out, 0, sizeof(float) * outSamples);
            output.unfilled.fetch_add(1, std::memory_order_relaxed);
            // Ahead of the active (it has not rendered block `number` yet: later in this
            // cycle, or the play position got ahead of it): wait for it rather than skip it,
            // and never run away from the worker that renders.
            if (segment.slots[active].lastBlock.load(std::memory_order_acquire) <= number) relock = true;
        }
        cancelStale(context, out, frames, cycleNow);
        if (source < 2) {
            returned = ((number + 1) << 1) | (source == 0 ? active : standby);
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
    }

    if (yielding) {
        yieldPlayedBuffer(context, me, out, frames, cycleNow);
        returned = returnedBefore;  // the same buffer as before
    } else if (returned != 0) {
        keepReturnedBuffer(context, out, frames);
    }
    me.lastOutput.store(returned, std::memory_order_release);
    me.lastCycleFrame.store(cycleNow.known ? storedFrame(cycleNow.frame) : 0, std::memory_order_release);
    publishCallbackEnd(me, context.loadSmoothed, startNs, monotonicNs(), frames, context.samplesPerNs);
    context.blocks.fetch_add(1, std::memory_order_release);
}

int paOutputCallback(const void* /*input*/, void* output, unsigned long frames,
                     const PaStreamCallbackTimeInfo* /*timeInfo*/, PaStreamCallbackFlags statusFlags,
                     void* userData) noexcept {
    RtGuardScope guard;
    auto& context = *static_cast<OutputContext*>(userData);
    if (!context.audioThreadKnown.load(std::memory_order_relaxed)) {
        context.audioThread = pthread_self();
        context.audioThreadKnown.store(true, std::memory_order_release);
    }
    if ((statusFlags & paOutputUnderflow) != 0)
        context.segment->outputs[context.slot].xruns.fetch_add(1, std::memory_order_relaxed);
    renderOutputBlock(context, static_cast<float*>(output), static_cast<uint32_t>(frames));
    return paContinue;
}

}  // namespace sustain
