// The OSC thread's way into the workers: state table first, then every worker's ring.
#pragma once

#include <atomic>
#include <bitset>
#include <cstdint>

#include "shm/layout.h"
#include "shm/spsc_ring.h"

namespace sustain {

/// Routes validated parameter changes to the workers.
///
/// Order of writes, and why: the state table first, so a worker that dies before applying
/// a change loses nothing (its replacement starts from the table); then the command into
/// each attached worker's ring (dual write: active and standby see the same commands);
/// then one wake byte to a worker only if it announced it sleeps (no system call per
/// message under load).
///
/// Policy when a ring is full: the update is coalesced, never waited on. The parameter is
/// marked dirty for that worker and re-sent later as a refresh carrying the table's
/// newest value, so the worker converges to exactly the last value sent. Counted in
/// OscMetrics::ringCoalesced.
class CommandRouter {
public:
    explicit CommandRouter(Segment& segment);

    /// Accepts one validated change. Thread: the OSC thread.  RT-safe: no syscalls, but
    /// not meant for RT use.
    void submit(uint32_t param, double value, uint64_t receiveNs, uint64_t timetag);

    /// Re-sends dirty parameters to rings that have room again; true while any stays dirty.
    /// Thread: the OSC thread.
    bool flushPending();

    /// Starts routing to `slot` (its ring must be freshly initialised) and waking it
    /// through `wakeFd`. Thread: sustaind's main thread.
    void attachWorker(uint32_t slot, int wakeFd);

    /// Sets the fd through which `slot` is woken (after the worker was forked).
    /// Thread: sustaind's main thread.
    void setWakeFd(uint32_t slot, int wakeFd) { wakeFd_[slot].store(wakeFd, std::memory_order_release); }

    /// Stops routing to `slot`; when it returns, the OSC thread no longer touches the
    /// slot's ring or wake fd, so the caller may reset the ring and close the fd.
    /// Thread: sustaind's main thread.
    void detachWorker(uint32_t slot);

    /// Wakes a worker whatever it announced (for shutdown). Thread: sustaind's main thread.
    void wakeNow(uint32_t slot);

private:
    void pushOrCoalesce(uint32_t slot, const Command& command);
    void wakeIfSleeping(uint32_t slot, SpscRing<Command>& ring);
    void beginSlot(uint32_t slot);

    Segment& segment_;
    std::atomic<int> wakeFd_[kWorkerSlots];
    std::atomic<uint32_t> attached_[kWorkerSlots];
    std::atomic<uint32_t> busy_[kWorkerSlots];        // the OSC thread is using the slot
    std::atomic<uint64_t> generation_[kWorkerSlots];  // bumped by attachWorker()
    uint64_t seenGeneration_[kWorkerSlots] = {};      // OSC thread only
    std::bitset<kParamCount> dirty_[kWorkerSlots];    // OSC thread only
    uint64_t sequence_ = 0;                           // OSC thread only
};

}  // namespace sustain
