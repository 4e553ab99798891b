// The OSC thread's way into the workers: state table first, then every worker's ring.
#pragma once

#include <atomic>
#include <bitset>
#include <cstdint>
#include <functional>
#include <vector>

#include "shm/layout.h"
#include "shm/command_order.h"
#include "shm/spsc_ring.h"

namespace sustain {

/// Routes validated parameter changes to the workers.
///
/// Order of writes, and why: the state table first, so a worker that dies before applying
/// a change loses nothing (its replacement starts from the table); then the command into
/// each attached worker's ring (dual write: active and standby see the same commands).
/// Wakes are per batch, not per message: the OSC thread pushes everything one receive
/// batch carried, then calls wakeSleepers(), which writes one wake byte to each worker that
/// was given something and announced it sleeps. A woken worker drains its whole ring
/// before it sleeps again, so under a flood a worker is woken at most once per batch and
/// the OSC thread keeps the CPU it needs to read the socket.
///
/// Policy when a ring is full: the update is coalesced, never waited on. The parameter is
/// marked dirty for that worker and re-sent later as a refresh carrying the table's
/// newest value, so the worker converges to exactly the last value sent. Counted in
/// OscMetrics::ringCoalesced.
///
/// Timed changes (OSC bundles with a timetag) wait here until shortly before they are heard
/// (kTimedPushAheadNs, shm/command_order.h), then go to every worker carrying the frame they apply at, computed
/// then from the frame clock: a frame computed 200 ms ahead would carry the error of the
/// clock's rate estimate times 200 ms (several samples); 30 ms ahead, a fraction of one.
/// They are never coalesced. Once their frame has been rendered they are written to the
/// state table, which holds what plays, not what will. At most kMaxTimedEvents wait, each sender
/// holding at most its share, none further ahead than the horizon (shm/command_order.h). A worker attached later (a rebuilt standby) is sent the
/// timed changes already pushed and not yet rendered, so none is lost at a failover.
class CommandRouter {
public:
    explicit CommandRouter(Segment& segment, uint64_t timedHorizonNs = kDefaultTimedHorizonNs);

    /// Accepts one validated change. Thread: the OSC thread.  RT-safe: no syscalls, but
    /// not meant for RT use.
    void submit(uint32_t param, double value, uint64_t receiveNs);

    /// Accepts one timed change to be heard at `heardNs` (CLOCK_MONOTONIC) from the sender
    /// whose endpointKey() is `sender`, or says why not (shm/command_order.h: the horizon,
    /// the sender's share, the schedule's bound); the caller counts a refusal.
    /// Thread: the OSC thread.
    TimedAdmission submitTimed(uint32_t param, double value, uint64_t receiveNs, int64_t heardNs, uint64_t sender);

    /// Pushes the timed changes heard within kTimedPushAheadNs to the workers, and writes
    /// those rendered by `nowNs` into the state table, calling `onCommitted(param, value)`
    /// for each. Thread: the OSC thread.
    void serviceTimed(uint64_t nowNs, const std::function<void(uint32_t, double)>& onCommitted);

    /// When serviceTimed() has work next (UINT64_MAX: none waits). Thread: the OSC thread.
    uint64_t nextTimedNs() const { return nextTimedNs_; }
    size_t timedWaiting() const { return timed_.size(); }

    /// Drops the timed changes that still wait here (/engine/clearSched, /engine/panic);
    /// those already pushed to the workers (due within kTimedPushAheadNs) play. Returns how
    /// many were dropped. Thread: the OSC thread.
    size_t clearTimed();

    /// Re-sends dirty parameters to rings that have room again; true while any stays dirty.
    /// Thread: the OSC thread.
    bool flushPending();

    /// Wakes each worker that was pushed something since the last call and sleeps: one
    /// write(2) per such worker. Call once per batch, before the OSC thread waits again.
    /// Thread: the OSC thread.
    void wakeSleepers();

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

    /// Wakes a worker whatever it announced (for shutdown, and a promotion). Thread: sustaind's main thread.
    void wakeNow(uint32_t slot);

private:
    void pushOrCoalesce(uint32_t slot, const Command& command);
    void beginSlot(uint32_t slot);
    void writeTable(uint32_t param, double value, uint64_t sequence);

    struct TimedChange {
        Command command;   // dueFrame set when pushed
        int64_t heardNs;
        uint64_t renderNs; // when its frame is rendered; known once pushed
        uint64_t sender;   // endpointKey() of who sent it: its share of the schedule
        bool pushed;
    };
    void pushTimed(TimedChange& change);
    void updateNextTimed();

    Segment& segment_;
    std::atomic<int> wakeFd_[kWorkerSlots];
    std::atomic<uint32_t> attached_[kWorkerSlots];
    std::atomic<uint32_t> busy_[kWorkerSlots];        // the OSC thread is using the slot
    std::atomic<uint64_t> generation_[kWorkerSlots];  // bumped by attachWorker()
    uint64_t seenGeneration_[kWorkerSlots] = {};      // OSC thread only
    std::bitset<kParamCount> dirty_[kWorkerSlots];    // OSC thread only
    std::bitset<kWorkerSlots> wakeOwed_;              // OSC thread only: pushed to since the last wakeSleepers()
    uint64_t sequence_ = 0;                           // OSC thread only
    std::vector<TimedChange> timed_;                  // OSC thread only; capacity kMaxTimedEvents, reserved
    uint64_t nextTimedNs_ = UINT64_MAX;               // OSC thread only
    uint64_t timedHorizonNs_;
};

}  // namespace sustain
