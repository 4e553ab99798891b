// Fencing a worker slot: the one place that says what a fence stops and what it leaves.
#pragma once

#include "shm/layout.h"

namespace sustain {

/// Fences `slot`: the process in it (dead, hung, or running on for a moment) can from now on
/// neither publish a block or its state nor take a command, because its epoch is stale.
/// What it completed before this moment is still good, and stays readable under the epoch it
/// had (fencedEpoch, below fencedBelowBlock): a standby that took the active's newer state
/// renders the next number from it, so the number it skipped exists only in the fenced
/// worker's ring. A block completed after the fence counts as not completed.
/// Thread: sustaind's.  RT-safe: yes (atomics only).
inline void fenceSlot(ControlBlock& control, WorkerSlot& slot) noexcept {
    slot.state.store(static_cast<uint32_t>(WorkerState::Fenced), std::memory_order_release);
    slot.fencedBelowBlock.store(slot.lastBlock.load(std::memory_order_acquire), std::memory_order_relaxed);
    slot.fencedEpoch.store(slot.epoch.load(std::memory_order_acquire), std::memory_order_release);
    slot.epoch.store(control.epoch.fetch_add(1, std::memory_order_acq_rel) + 1, std::memory_order_release);
}

/// Forgets a fence before another process starts in the slot: its blocks carry another epoch.
/// Thread: sustaind's.  RT-safe: yes.
inline void clearFence(WorkerSlot& slot) noexcept {
    slot.fencedEpoch.store(0, std::memory_order_release);
    slot.fencedBelowBlock.store(0, std::memory_order_relaxed);
}

}  // namespace sustain
