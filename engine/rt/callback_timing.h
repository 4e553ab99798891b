// What every audio callback publishes about itself at the end of a block.
#pragma once

#include <atomic>
#include <cstdint>

#include "shm/layout.h"

namespace sustain {

/// Publishes the block's load (time in callback / period: smoothed, and the peak), the
/// heartbeat time and the callback count. Thread: the audio thread.  RT-safe: yes.
inline void publishCallbackEnd(WorkerSlot& slot, double& loadSmoothed, uint64_t startNs, uint64_t endNs, uint32_t frames,
                               double samplesPerNs) noexcept {
    const double periodNs = static_cast<double>(frames) / samplesPerNs;
    const double load = static_cast<double>(endNs - startNs) / periodNs;
    loadSmoothed += 0.05 * (load - loadSmoothed);
    slot.loadPermille.store(static_cast<uint32_t>(loadSmoothed * 1000.0), std::memory_order_relaxed);
    const auto loadPermille = static_cast<uint32_t>(load * 1000.0);
    if (loadPermille > slot.loadPeakPermille.load(std::memory_order_relaxed))
        slot.loadPeakPermille.store(loadPermille, std::memory_order_relaxed);
    slot.lastCallbackNs.store(endNs, std::memory_order_release);
    slot.callbacks.fetch_add(1, std::memory_order_release);
}

}  // namespace sustain
