#include "osc/command_router.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>

#include "shm/clock.h"
#include "shm/command_order.h"
#include "shm/fault_point.h"
#include "shm/frame_clock.h"

namespace sustain {

CommandRouter::CommandRouter(Segment& segment, uint64_t timedHorizonNs)
    : segment_(segment), timedHorizonNs_(timedHorizonNs) {
    for (uint32_t slot = 0; slot < kWorkerSlots; ++slot) {
        wakeFd_[slot].store(-1);
        attached_[slot].store(0);
        busy_[slot].store(0);
        generation_[slot].store(0);
    }
    sequence_ = segment_.params.lastSequence.load(std::memory_order_relaxed);
    timed_.reserve(kMaxTimedEvents);
}

void CommandRouter::beginSlot(uint32_t slot) {
    const uint64_t generation = generation_[slot].load(std::memory_order_acquire);
    if (generation != seenGeneration_[slot]) {
        // A new worker in this slot starts from the table: old dirty marks mean nothing to it.
        dirty_[slot].reset();
        seenGeneration_[slot] = generation;
        // Nor has it heard of the timed changes still waiting: it needs them should it
        // ever play. (Its ring is empty and larger than kMaxTimedEvents: they fit.)
        for (const TimedChange& change : timed_)
            if (change.pushed) pushOrCoalesce(slot, change.command);
    }
}

void CommandRouter::pushOrCoalesce(uint32_t slot, const Command& command) {
    if (dirty_[slot].test(command.param)) {
        // A refresh is already owed for this parameter; it will carry this newer value.
        segment_.osc.ringCoalesced.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    SpscRing<Command> ring = commandRing(segment_, slot);
    Command stamped = command;
    stamped.pushNs = monotonicNs();
    if (!ring.tryPush(stamped)) {
        dirty_[slot].set(command.param);
        segment_.osc.ringCoalesced.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    wakeOwed_.set(slot);
}

void CommandRouter::wakeSleepers() {
    if (wakeOwed_.none()) return;
    for (uint32_t slot = 0; slot < kWorkerSlots; ++slot) {
        if (!wakeOwed_.test(slot)) continue;
        busy_[slot].store(1, std::memory_order_seq_cst);
        if (attached_[slot].load(std::memory_order_seq_cst) != 0) {
            SpscRing<Command> ring = commandRing(segment_, slot);
            // A worker that is awake costs one atomic load: it drains everything before it sleeps.
            if (ring.consumerNeedsWake()) {
                const int fd = wakeFd_[slot].load(std::memory_order_acquire);
                const char byte = 'w';
                // A full socket buffer means wakes are already pending: nothing is lost.
                if (fd >= 0 && write(fd, &byte, 1) == 1)
                    segment_.workers[slot].wakesSent.fetch_add(1, std::memory_order_relaxed);
            }
        }
        busy_[slot].store(0, std::memory_order_release);
    }
    wakeOwed_.reset();
}

void CommandRouter::writeTable(uint32_t param, double value, uint64_t sequence) {
    ParamEntry& entry = segment_.params.entries[param];
    entry.value.store(value, std::memory_order_relaxed);
    // A timed change comes due after later plain ones may have been written: the version
    // never goes back, so a worker starting from the table skips every command up to it.
    const uint64_t version = entry.version.load(std::memory_order_relaxed);
    entry.version.store(isNewer(sequence, version) ? sequence : version, std::memory_order_release);
}

void CommandRouter::submit(uint32_t param, double value, uint64_t receiveNs) {
    const uint64_t sequence = ++sequence_;
    writeTable(param, value, sequence);
    segment_.params.lastSequence.store(sequence, std::memory_order_release);
    SUSTAIN_FAULT_POINT(FaultPoint::StateTableBeforeRing);

    Command command{};
    command.sequence = sequence;
    command.receiveNs = receiveNs;
    command.value = value;
    command.param = static_cast<uint16_t>(param);
    for (uint32_t slot = 0; slot < kWorkerSlots; ++slot) {
        busy_[slot].store(1, std::memory_order_seq_cst);
        if (attached_[slot].load(std::memory_order_seq_cst) != 0) {
            beginSlot(slot);
            pushOrCoalesce(slot, command);
        }
        busy_[slot].store(0, std::memory_order_release);
    }
}

TimedAdmission CommandRouter::submitTimed(uint32_t param, double value, uint64_t receiveNs, int64_t heardNs,
                                          uint64_t sender) {
    const auto nowNs = static_cast<int64_t>(monotonicNs());
    if (heardNs - nowNs > static_cast<int64_t>(timedHorizonNs_)) return TimedAdmission::TooFarAhead;
    const auto held = static_cast<size_t>(
        std::count_if(timed_.begin(), timed_.end(), [sender](const TimedChange& c) { return c.sender == sender; }));
    if (held >= kMaxTimedEvents / kTimedSenderShares) return TimedAdmission::SenderQuota;
    if (timed_.size() >= kMaxTimedEvents) return TimedAdmission::ScheduleFull;
    const uint64_t sequence = ++sequence_;
    segment_.params.lastSequence.store(sequence, std::memory_order_release);
    TimedChange change{};
    change.command.sequence = sequence;
    change.command.receiveNs = receiveNs;
    change.command.value = value;
    change.command.param = static_cast<uint16_t>(param);
    change.command.flags = kCommandFlagTimed;
    change.heardNs = heardNs;
    change.sender = sender;
    timed_.push_back(change);
    updateNextTimed();
    serviceTimed(monotonicNs(), [](uint32_t, double) {});
    return TimedAdmission::Scheduled;
}

void CommandRouter::pushTimed(TimedChange& change) {
    FrameAnchor anchor{};
    const uint32_t latencyFrames = segment_.clock.playLatencyFrames.load(std::memory_order_acquire);
    if (readFrameClock(segment_, anchor)) {
        const int64_t dueFrame = std::max<int64_t>(0, frameHeardAt(anchor, change.heardNs, latencyFrames));
        change.command.dueFrame = static_cast<uint64_t>(dueFrame);
        change.renderNs = static_cast<uint64_t>(std::max<int64_t>(0, renderStartNs(anchor, dueFrame)));
    } else {
        // No frame clock (nothing renders): frame 0 has passed for any worker; it applies at once.
        change.command.dueFrame = 0;
        change.renderNs = 0;
    }
    change.pushed = true;
    for (uint32_t slot = 0; slot < kWorkerSlots; ++slot) {
        busy_[slot].store(1, std::memory_order_seq_cst);
        if (attached_[slot].load(std::memory_order_seq_cst) != 0) {
            beginSlot(slot);
            // If the ring is full, this marks the parameter dirty like any change, and the
            // refresh then carries the table's value instead: a ring of 8192 already full
            // of a flood, whose own values win.
            pushOrCoalesce(slot, change.command);
        }
        busy_[slot].store(0, std::memory_order_release);
    }
}

void CommandRouter::updateNextTimed() {
    nextTimedNs_ = UINT64_MAX;
    for (const TimedChange& change : timed_) {
        const uint64_t at = change.pushed ? change.renderNs
                                          : static_cast<uint64_t>(std::max<int64_t>(0, change.heardNs - kTimedPushAheadNs));
        nextTimedNs_ = std::min(nextTimedNs_, at);
    }
}

void CommandRouter::serviceTimed(uint64_t nowNs, const std::function<void(uint32_t, double)>& onCommitted) {
    if (nowNs < nextTimedNs_) return;
    // In the order they were sent in: the later of two changes heard together wins, as in the audio.
    for (TimedChange& change : timed_)
        if (!change.pushed && change.heardNs - kTimedPushAheadNs <= static_cast<int64_t>(nowNs)) pushTimed(change);
    std::stable_sort(timed_.begin(), timed_.end(), [](const TimedChange& a, const TimedChange& b) {
        return a.pushed && (!b.pushed || a.command.dueFrame < b.command.dueFrame);
    });
    size_t done = 0;
    while (done < timed_.size() && timed_[done].pushed && timed_[done].renderNs <= nowNs) {
        const Command& command = timed_[done].command;
        writeTable(command.param, command.value, command.sequence);
        onCommitted(command.param, command.value);
        ++done;
    }
    timed_.erase(timed_.begin(), timed_.begin() + static_cast<std::ptrdiff_t>(done));
    updateNextTimed();
}

size_t CommandRouter::clearTimed() {
    const size_t before = timed_.size();
    timed_.erase(std::remove_if(timed_.begin(), timed_.end(), [](const TimedChange& c) { return !c.pushed; }),
                 timed_.end());
    updateNextTimed();
    return before - timed_.size();
}

bool CommandRouter::flushPending() {
    bool anyDirty = false;
    for (uint32_t slot = 0; slot < kWorkerSlots; ++slot) {
        busy_[slot].store(1, std::memory_order_seq_cst);
        if (attached_[slot].load(std::memory_order_seq_cst) != 0) {
            beginSlot(slot);
            SpscRing<Command> ring = commandRing(segment_, slot);
            for (uint32_t param = 0; param < kParamCount && dirty_[slot].any(); ++param) {
                if (!dirty_[slot].test(param)) continue;
                const ParamEntry& entry = segment_.params.entries[param];
                Command refresh{};
                refresh.sequence = entry.version.load(std::memory_order_acquire);
                refresh.value = entry.value.load(std::memory_order_relaxed);
                refresh.receiveNs = monotonicNs();
                refresh.pushNs = refresh.receiveNs;
                refresh.param = static_cast<uint16_t>(param);
                refresh.flags = kCommandFlagRefresh;
                if (!ring.tryPush(refresh)) break;
                dirty_[slot].reset(param);
                wakeOwed_.set(slot);
            }
            anyDirty = anyDirty || dirty_[slot].any();
        }
        busy_[slot].store(0, std::memory_order_release);
    }
    return anyDirty;
}

void CommandRouter::attachWorker(uint32_t slot, int wakeFd) {
    wakeFd_[slot].store(wakeFd, std::memory_order_release);
    generation_[slot].fetch_add(1, std::memory_order_release);
    attached_[slot].store(1, std::memory_order_seq_cst);
}

void CommandRouter::detachWorker(uint32_t slot) {
    attached_[slot].store(0, std::memory_order_seq_cst);
    // Dekker with submit(): once busy_ reads 0 after attached_ became 0, every later
    // use by the OSC thread sees attached_ == 0.
    while (busy_[slot].load(std::memory_order_seq_cst) != 0) sched_yield();
    wakeFd_[slot].store(-1, std::memory_order_release);
}

void CommandRouter::wakeNow(uint32_t slot) {
    const int fd = wakeFd_[slot].load(std::memory_order_acquire);
    const char byte = 'q';
    if (fd >= 0 && write(fd, &byte, 1) < 0) { /* EAGAIN: a wake is already pending */ }
}

}  // namespace sustain
