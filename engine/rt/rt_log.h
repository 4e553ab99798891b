// Logging from the audio thread: a POD into a lock-free ring; the control thread formats
// it and calls spdlog. The callback never formats text or touches a file.
#pragma once

#include <cstdint>

#include "shm/clock.h"
#include "shm/spsc_ring.h"

namespace sustain {

enum class RtEvent : uint32_t { Xrun = 1, Clipped = 2, QueueBacklog = 3, StaleEpoch = 4, FadeDone = 5 };

struct RtLogRecord {
    uint64_t timeNs;
    RtEvent event;
    uint32_t reserved;
    int64_t a;
    int64_t b;
};

inline constexpr uint32_t kRtLogCapacity = 256;

/// An in-process ring of RtLogRecord (the audio thread produces, the control thread consumes).
struct RtLogRing {
    RingIndices indices;
    RtLogRecord slots[kRtLogCapacity]{};  // zeroed once at construction, never in the callback
    RtLogRing() { SpscRing<RtLogRecord>::initialize(indices, kRtLogCapacity); }
    SpscRing<RtLogRecord> ring() { return SpscRing<RtLogRecord>(indices, slots); }
};

/// Queues one record; a full ring is counted in `dropped`, never waited on.
/// Thread: the audio thread.  RT-safe: yes.
inline void rtLog(RtLogRing& log, std::atomic<uint64_t>& dropped, RtEvent event, int64_t a = 0, int64_t b = 0) noexcept {
    if (!log.ring().tryPush({monotonicNs(), event, 0, a, b})) dropped.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace sustain
