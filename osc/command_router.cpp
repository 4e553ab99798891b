#include "osc/command_router.h"

#include <sched.h>
#include <unistd.h>

#include "shm/clock.h"

namespace sustain {

CommandRouter::CommandRouter(Segment& segment) : segment_(segment) {
    for (uint32_t slot = 0; slot < kWorkerSlots; ++slot) {
        wakeFd_[slot].store(-1);
        attached_[slot].store(0);
        busy_[slot].store(0);
        generation_[slot].store(0);
    }
    sequence_ = segment_.params.lastSequence.load(std::memory_order_relaxed);
}

void CommandRouter::beginSlot(uint32_t slot) {
    const uint64_t generation = generation_[slot].load(std::memory_order_acquire);
    if (generation != seenGeneration_[slot]) {
        // A new worker in this slot starts from the table: old dirty marks mean nothing to it.
        dirty_[slot].reset();
        seenGeneration_[slot] = generation;
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
    wakeIfSleeping(slot, ring);
}

void CommandRouter::wakeIfSleeping(uint32_t slot, SpscRing<Command>& ring) {
    // Right after the push, not after the whole batch: a sleeping worker starts draining
    // while the OSC thread parses the rest. A worker that is awake costs one atomic load.
    if (!ring.consumerNeedsWake()) return;
    const int fd = wakeFd_[slot].load(std::memory_order_acquire);
    const char byte = 'w';
    // A full socket buffer means wakes are already pending: nothing is lost.
    if (fd >= 0 && write(fd, &byte, 1) < 0) { /* EAGAIN: already awake-pending */ }
}

void CommandRouter::submit(uint32_t param, double value, uint64_t receiveNs, uint64_t timetag) {
    const uint64_t sequence = ++sequence_;
    ParamEntry& entry = segment_.params.entries[param];
    entry.value.store(value, std::memory_order_relaxed);
    entry.version.store(sequence, std::memory_order_release);
    segment_.params.lastSequence.store(sequence, std::memory_order_release);

    Command command{};
    command.sequence = sequence;
    command.receiveNs = receiveNs;
    command.timetag = timetag;
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
            }
            wakeIfSleeping(slot, ring);
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
