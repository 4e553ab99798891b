// What every audio callback publishes about itself at the end of a block.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>

#include "shm/layout.h"

namespace sustain {

/// Cycles without the process it watches advancing after which a standby plays instead (a
/// direct-layout standby worker, a standby output stage), when judged by callback counts:
/// two, because the order of clients within a JACK cycle may flip once (one cycle in which
/// the other seems not to advance) but never twice in a row. Judged by JACK's frame times
/// (whenever they are known), order does not matter: kTakeoverCycles periods since the last
/// cycle the other ran in, i.e. kTakeoverCycles - 1 cycles missed. ThreadSanitizer stops
/// threads for milliseconds now and then (its shadow bookkeeping): in such a build a standby waits 8 cycles, or it would take over
/// from a healthy process every second (a TSan build looks for races, not for timing; the
/// supervisor's hang limit is raised there for the same reason).
#if defined(__SANITIZE_THREAD__)
inline constexpr uint32_t kTakeoverCycles = 8;
#else
inline constexpr uint32_t kTakeoverCycles = 2;
#endif

/// The thread an audio callback runs on, for the process's main thread to set its priority
/// and CPU once the stream runs. Written once, by the first callback.
struct AudioThread {
    pthread_t thread{};
    std::atomic<bool> known{false};

    /// At every callback's start. Thread: the audio thread.  RT-safe: yes (pthread_self
    /// reads the thread pointer: no system call).
    void note() noexcept {
        if (known.load(std::memory_order_relaxed)) return;
        thread = pthread_self();
        known.store(true, std::memory_order_release);
    }
};

/// A JACK frame time in a 64-bit field where 0 means "none": 1 << 32 | frame, so that frame
/// 0 is a value too. RT-safe: arithmetic.
inline uint64_t storedFrame(uint32_t frame) noexcept { return (uint64_t{1} << 32) | frame; }

/// Whether JACK frame time `later` is `earlier` or after it, on JACK's 32-bit clock, which
/// wraps (about a day at 48 kHz): the difference is taken unsigned and must be under half
/// the range. RT-safe: arithmetic.
inline bool frameAtOrAfter(uint32_t later, uint32_t earlier) noexcept {
    return static_cast<uint32_t>(later - earlier) < (uint32_t{1} << 31);
}

/// A standby is in step once it has rendered this many blocks in a row from the active's
/// state (the worker's `warm` state); only a standby in step may take over (direct layout):
/// one that has just joined JACK's graph sees the active skipped while JACK reorders it.
inline constexpr uint64_t kWarmBlocks = 16;

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
