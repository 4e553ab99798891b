#include "supervisor/supervisor.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "engine/rt/callback_timing.h"
#include "shm/clock.h"
#include "shm/fault_point.h"
#include "shm/fencing.h"
#include "shm/realtime.h"
#include "shm/segment.h"
#include "shm/spsc_ring.h"
#include "supervisor/stop_signals.h"

namespace sustain {

namespace {
constexpr uint64_t kTagSignal = 1;
constexpr uint64_t kTagTimer = 2;
constexpr uint64_t kTagPrepared = 3;        // the prepared worker (| kTagSentinel: its socket)
constexpr uint64_t kTagChild = 0x1000;      // | kind << 8 | slot
constexpr uint64_t kTagSentinel = 0x10000;  // set for the sentinel socket, clear for the pidfd
constexpr long kTickNs = 2'000'000;         // hang checks and bookkeeping while something is in motion
// While every process keeps up and nothing is pending, the loop ticks this seldom
// (Supervisor::steady). A process that stops is seen behind at the next tick, which returns
// to kTickNs; the cycles it missed by then count, so it is found hung within hangCycles
// (16 ms) of its stop, or at the steady tick after that, whichever comes later.
constexpr long kSteadyTickNs = 16'000'000;
constexpr uint64_t kStuckReportNs = 1'000'000'000;  // one that is still there after 1 s is stuck
constexpr uint64_t kStartupLimitNs = 10'000'000'000ull;    // see startupLimitNs()
constexpr uint64_t kMinStartupLimitNs = 1'000'000'000ull;  // see startupLimitNs()
constexpr uint64_t kStartupSlack = 5;                      // see startupLimitNs()
constexpr uint64_t kMinPreparedStartupLimitNs = 500'000'000ull;  // see startupLimitNs(const Child&)
constexpr uint64_t kStoppedCheckAfterNs = 10'000'000ull;   // a process's state is read once its callbacks stalled this long
constexpr uint64_t kGraphChangeGraceNs = 100'000'000;  // see graceUntilNs_
constexpr uint64_t kDeviceRetryNs = 1'000'000'000;     // see deviceGoneSinceNs_
constexpr uint64_t kFaultsBeforeDeviceLossNs = 1'000'000'000;  // see forgiveFaultsBeforeDeviceLoss
constexpr uint64_t kConfirmTakeoverCycles = 3;  // see Supervisor::takenOverProcessHung
// A prepared worker is started once every worker slot has been warm this long (it takes a
// CPU for tens of milliseconds, which a replacement still starting should have).
constexpr uint64_t kPrepareAfterWarmNs = 300'000'000;
constexpr uint64_t kPreparedCheckNs = 50'000'000;  // how often the prepared worker's state is read
constexpr uint64_t kBehindCycles = 2;  // a process this many cycles behind the others is watched (checkHang)

uint64_t secondsToNs(double seconds) { return static_cast<uint64_t>(seconds * 1e9); }

void recordDuration(std::atomic<uint64_t>& last, std::atomic<uint64_t>& max, uint64_t us) {
    last.store(us, std::memory_order_relaxed);
    if (us > max.load(std::memory_order_relaxed)) max.store(us, std::memory_order_relaxed);
}
}  // namespace

Supervisor::Supervisor(Segment& segment, CommandRouter& router, SupervisorOptions options)
    : segment_(segment), router_(router), options_(std::move(options)), graph_("sustain-" + options_.instance + "-graph", segment.supervisor.graphChangesDropped) {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    signalFd_ = openStopSignalFd();
    watch(signalFd_, kTagSignal);
    timerFd_ = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    setTickPeriod(kTickNs);
    watch(timerFd_, kTagTimer);
}

void Supervisor::setTickPeriod(long ns) {
    if (ns == tickNs_) return;
    tickNs_ = ns;
    itimerspec period{};
    period.it_interval.tv_nsec = ns;
    period.it_value.tv_nsec = ns;
    timerfd_settime(timerFd_, 0, &period, nullptr);
}

bool Supervisor::behind(Kind kind, uint32_t slot) const {
    const Child& c = child(kind, slot);
    return c.process.running() && c.startTimed &&
           slotInfo(kind, slot).callbacks.load(std::memory_order_acquire) == c.lastCallbacks &&
           cycleClock_ - c.referenceAtProgress > kBehindCycles;
}

// Nothing needs a close watch: the relay layout (in the direct layout the audio waits for
// the supervisor to take a failed worker out of the mix), no grace time after a graph change,
// the device there, nobody waiting on a CPU the machine does not run, and every process
// running, past its start, out of the graph if it is a worker, less than kBehindCycles
// behind, with nothing scheduled, taken over or being killed.
bool Supervisor::steady(uint64_t nowNs) const {
    if (options_.layout != OutputLayout::Relay || nowNs < graceUntilNs_ || deviceGoneSinceNs_ != 0 || cpusSampled_)
        return false;
    for (Kind kind : {Kind::Worker, Kind::Output}) {
        for (uint32_t slot = 0; slot < kWorkerSlots; ++slot) {
            const Child& c = child(kind, slot);
            if (!c.process.running() || !c.startTimed || c.rebuilding || c.respawnAtNs != 0 || c.takenOver ||
                c.dying.pid() > 0 || (kind == Kind::Worker && !c.detached) ||
                cycleClock_ - c.referenceAtProgress >= kBehindCycles)
                return false;
        }
    }
    return true;
}

Supervisor::~Supervisor() {
    for (Child& c : workers_) c.process.killAndReap();
    for (Child& c : outputs_) c.process.killAndReap();
    if (timerFd_ >= 0) close(timerFd_);
    if (signalFd_ >= 0) close(signalFd_);
    if (epoll_ >= 0) close(epoll_);
}

void Supervisor::watch(int fd, uint64_t tag) {
    epoll_event event{};
    event.events = EPOLLIN | EPOLLRDHUP;
    event.data.u64 = tag;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event);
}

void Supervisor::unwatch(int fd) {
    if (fd >= 0) epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
}

std::string Supervisor::name(Kind kind, uint32_t slot) const {
    return (kind == Kind::Worker ? "worker " : "output stage ") + std::to_string(slot);
}

std::string Supervisor::jackClientName(Kind kind, uint32_t slot) const {
    if (kind == Kind::Worker) return workerClientName(options_.instance, workers_[slot].generation);
    return "sustain-" + options_.instance + "-out" + std::to_string(slot);
}

std::vector<std::string> Supervisor::childArgs(std::vector<std::string> args) const {
    for (std::string arg : {std::string("--instance"), options_.instance, std::string("--wake-fd"), std::string("3"),
                            std::string("--supervisor-pid"), std::to_string(getpid()), std::string("--log-level"),
                            options_.logLevel})
        args.push_back(std::move(arg));
    return args;
}

bool Supervisor::spawn(Kind kind, uint32_t slot, WorkerRole role, std::string& error) {
    WorkerSlot& info = slotInfo(kind, slot);
    Child& c = child(kind, slot);
    info.pid.store(0, std::memory_order_relaxed);
    info.callbacks.store(0, std::memory_order_relaxed);
    info.xruns.store(0, std::memory_order_relaxed);
    info.loadPeakPermille.store(0, std::memory_order_relaxed);
    info.fadedOut.store(0, std::memory_order_relaxed);
    info.exitReason.store(0, std::memory_order_relaxed);
    info.lastBlock.store(0, std::memory_order_relaxed);
    info.syncedBlocks.store(0, std::memory_order_relaxed);
    info.ownBlocks.store(0, std::memory_order_relaxed);
    info.activeStall.store(0, std::memory_order_relaxed);
    info.takeover.store(0, std::memory_order_relaxed);
    info.takeoverNs.store(0, std::memory_order_relaxed);
    info.stallSinceNs.store(0, std::memory_order_relaxed);
    info.heldBlocks.store(0, std::memory_order_relaxed);
    info.caughtUpBlocks.store(0, std::memory_order_relaxed);
    info.controlBeats.store(0, std::memory_order_relaxed);
    // A cycle stamped by the slot's previous process says nothing about this one (after a
    // JACK server restart, not even about the same clock).
    info.lastCycleFrame.store(0, std::memory_order_relaxed);
    clearFence(info);
    info.role.store(static_cast<uint32_t>(role), std::memory_order_relaxed);
    // A fresh epoch per process: whatever an earlier process of this slot might still
    // write carries another epoch and is ignored.
    info.epoch.store(segment_.control.epoch.fetch_add(1, std::memory_order_acq_rel) + 1, std::memory_order_release);
    info.state.store(static_cast<uint32_t>(WorkerState::Starting), std::memory_order_release);
    if (kind == Kind::Worker) {
        // The slot is empty: no producer (detached) and no consumer (no worker) touch the ring.
        SpscRing<Command>::initialize(segment_.rings[slot].indices, kCommandRingCapacity);
        // Route commands before the worker reads the table: whatever its snapshot misses
        // is then in its ring (it skips what the snapshot already holds).
        router_.attachWorker(slot, -1);
    }
    const bool started =
        kind == Kind::Worker
            ? startWorkerProcess(slot, error)
            : c.process.spawn(options_.output, childArgs({"--slot", std::to_string(slot)}), error);
    if (!started) {
        if (kind == Kind::Worker) router_.detachWorker(slot);
        info.state.store(static_cast<uint32_t>(WorkerState::Dead), std::memory_order_release);
        return false;
    }
    if (kind == Kind::Worker) router_.setWakeFd(slot, c.process.wakeFd());
    info.pid.store(c.process.pid(), std::memory_order_release);
    const uint64_t tag = kTagChild | (static_cast<uint64_t>(kind) << 8) | slot;
    watch(c.process.pidFd(), tag);
    watch(c.process.wakeFd(), tag | kTagSentinel);
    c.spawnedNs = monotonicNs();
    graceUntilNs_ = c.spawnedNs + kGraphChangeGraceNs;
    c.lastCallbacks = 0;
    c.progressNs = c.spawnedNs;
    c.referenceAtProgress = 0;
    c.clockSeen = 0;
    c.detached = false;
    c.lastBeats = 0;
    c.referenceAtBeat = 0;
    c.respawnAtNs = 0;
    c.startTimed = false;
    c.audioThread = 0;
    c.mainCpuAtSpawnNs = c.prepared ? c.process.threadCpuNs(c.process.pid()) : 0;
    spdlog::info("{} started as {} (pid {}){}", name(kind, slot), role == WorkerRole::Active ? "active" : "standby",
                 c.process.pid(), c.prepared ? ", prepared ahead" : "");
    return true;
}

bool Supervisor::preparable() const {
    // An exclusive device is opened on promotion only, and without a device (or a standby)
    // there is nothing to prepare for.
    return options_.standby && !options_.exclusiveDevice && deviceGoneSinceNs_ == 0;
}

bool Supervisor::startWorkerProcess(uint32_t slot, std::string& error) {
    Child& c = workers_[slot];
    WorkerSlot& info = segment_.slots[slot];
    c.prepared = false;
    if (prepared_.running() && preparable()) {
        if (prepared_.stopped()) {
            losePrepared("is stopped", monotonicNs());
        } else {
            unwatch(prepared_.pidFd());
            unwatch(prepared_.wakeFd());
            // The slot is all set up (epoch, role, ring, state Starting): the byte that names
            // it lets the prepared worker write there from now on.
            const auto byte = static_cast<unsigned char>(slot);
            if (write(prepared_.wakeFd(), &byte, 1) == 1) {
                c.process = std::move(prepared_);
                c.generation = preparedGeneration_;
                c.prepared = true;
                info.clientGeneration.store(c.generation, std::memory_order_relaxed);
                segment_.supervisor.preparedPid.store(0, std::memory_order_release);
                segment_.supervisor.preparedUsed.fetch_add(1, std::memory_order_relaxed);
                preparedFailures_ = 0;
                return true;
            }
            losePrepared("could not be given its slot", monotonicNs());
        }
    }
    c.generation = nextGeneration_++;
    info.clientGeneration.store(c.generation, std::memory_order_relaxed);
    return c.process.spawn(options_.worker,
                           childArgs({"--slot", std::to_string(slot), "--generation", std::to_string(c.generation)}),
                           error);
}

void Supervisor::keepPrepared(uint64_t nowNs) {
    if (prepared_.running() && nowNs - preparedCheckedNs_ >= kPreparedCheckNs) {
        // A stopped one would be found only when a slot needs it, and that slot's process
        // then started on the spot: found now, another is prepared before it is needed.
        preparedCheckedNs_ = nowNs;
        if (prepared_.stopped()) losePrepared("is stopped", nowNs);
    }
    if (!preparable() || prepared_.running() || nowNs < prepareAtNs_) return;
    for (uint32_t slot = 0; slot < kWorkerSlots; ++slot) {
        const Child& c = workers_[slot];
        const auto state = static_cast<WorkerState>(segment_.slots[slot].state.load(std::memory_order_acquire));
        if (!c.process.running() || c.rebuilding || c.respawnAtNs != 0 ||
            (state != WorkerState::Warm && state != WorkerState::Active)) {
            prepareAtNs_ = std::max(prepareAtNs_, nowNs + kPrepareAfterWarmNs);
            return;
        }
    }
    std::string error;
    preparedGeneration_ = nextGeneration_++;
    if (!prepared_.spawn(options_.worker,
                         childArgs({"--generation", std::to_string(preparedGeneration_), "--prepared"}), error)) {
        spdlog::warn("cannot start a prepared worker: {}", error);
        ++preparedFailures_;
        prepareAtNs_ = nowNs + (1'000'000'000ull << std::min<uint32_t>(preparedFailures_, 5));
        return;
    }
    watch(prepared_.pidFd(), kTagPrepared);
    watch(prepared_.wakeFd(), kTagPrepared | kTagSentinel);
    segment_.supervisor.preparedPid.store(prepared_.pid(), std::memory_order_release);
    spdlog::debug("worker prepared ahead (pid {})", prepared_.pid());
}

void Supervisor::losePrepared(const std::string& why, uint64_t nowNs) {
    if (prepared_.pid() <= 0) return;
    unwatch(prepared_.pidFd());
    unwatch(prepared_.wakeFd());
    const pid_t pid = prepared_.pid();
    // It holds no slot: nothing waits for it to be gone, so a process the kernel does not
    // let die (state D) is left to it, with an error.
    const bool gone = prepared_.tryReap() || prepared_.killAndReap();
    const std::string exit = gone ? prepared_.exit().describe() : "does not die (stuck in the kernel): left to the kernel";
    prepared_.release();
    segment_.supervisor.preparedPid.store(0, std::memory_order_release);
    segment_.supervisor.preparedLost.fetch_add(1, std::memory_order_relaxed);
    ++preparedFailures_;
    // 2, 4, ... 32 s after losses in a row: a prepared worker is a saving, never a need.
    const uint64_t delay = 1'000'000'000ull << std::min<uint32_t>(preparedFailures_, 5);
    if (gone) spdlog::warn("the prepared worker (pid {}) {}{}; another in {} s", pid, why.empty() ? "" : why + ", ",
                           exit, delay / 1'000'000'000ull);
    else spdlog::error("the prepared worker (pid {}) {}", pid, exit);
    prepareAtNs_ = nowNs + delay;
}

void Supervisor::dropPrepared() {
    if (prepared_.pid() <= 0) return;
    unwatch(prepared_.pidFd());
    unwatch(prepared_.wakeFd());
    prepared_.killAndReap();
    prepared_.release();
    segment_.supervisor.preparedPid.store(0, std::memory_order_release);
}

bool Supervisor::waitForState(Kind kind, uint32_t slot, WorkerState wanted, double seconds, std::string& error) {
    Child& c = child(kind, slot);
    WorkerSlot& info = slotInfo(kind, slot);
    const uint64_t deadline = monotonicNs() + secondsToNs(seconds);
    while (monotonicNs() < deadline) {
        if (info.state.load(std::memory_order_acquire) == static_cast<uint32_t>(wanted)) return true;
        if (c.process.tryReap()) {
            error = name(kind, slot) + " " + c.process.exit().describe();
            switch (static_cast<WorkerExit>(info.exitReason.load(std::memory_order_acquire))) {
                case WorkerExit::NoDevice: error += ": no usable audio output device (see its message above)"; break;
                case WorkerExit::StreamFailed: error += ": the audio stream could not start (see above)"; break;
                case WorkerExit::AttachFailed: error += ": it could not attach to the shared memory (see above)"; break;
                default: break;
            }
            forget(kind, slot);
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    error = name(kind, slot) + " did not start within " + std::to_string(static_cast<int>(seconds)) + " s";
    return false;
}

bool Supervisor::start(std::string& error) {
    const bool relay = options_.layout == OutputLayout::Relay;
    segment_.control.activeSlot.store(0, std::memory_order_release);
    segment_.output.writerSlot.store(0, std::memory_order_release);
    if (!spawn(Kind::Worker, 0, WorkerRole::Active, error) || !waitForState(Kind::Worker, 0, WorkerState::Active, 10, error))
        return false;
    if (relay &&
        (!spawn(Kind::Output, 0, WorkerRole::Active, error) || !waitForState(Kind::Output, 0, WorkerState::Active, 10, error)))
        return false;
    if (options_.standby) {
        if (!spawn(Kind::Worker, 1, WorkerRole::Standby, error)) return false;
        workers_[1].rebuilding = true;  // reported once warm
        if (relay && !spawn(Kind::Output, 1, WorkerRole::Standby, error)) return false;
    }
    segment_.control.ready.store(1, std::memory_order_release);
    return true;
}

void Supervisor::forget(Kind kind, uint32_t slot) {
    Child& c = child(kind, slot);
    unwatch(c.process.pidFd());
    unwatch(c.process.wakeFd());
    if (kind == Kind::Worker) router_.detachWorker(slot);
    if (c.process.running()) {
        c.dying = std::move(c.process);
        c.dyingSinceNs = monotonicNs();
        c.dyingReported = false;
        segment_.supervisor.stuckProcesses.fetch_add(1, std::memory_order_relaxed);
    } else {
        c.process.release();
    }
    WorkerSlot& info = slotInfo(kind, slot);
    info.pid.store(0, std::memory_order_release);
    info.state.store(static_cast<uint32_t>(WorkerState::Dead), std::memory_order_release);
    c.rebuilding = false;
    c.takenOver = false;
}

uint64_t Supervisor::crashDelayNs(uint64_t nowNs) {
    recentCrashesNs_.push_back(nowNs);
    while (!recentCrashesNs_.empty() && nowNs - recentCrashesNs_.front() > secondsToNs(options_.restartWindowS))
        recentCrashesNs_.pop_front();
    if (recentCrashesNs_.size() <= options_.restartLimit) {
        segment_.supervisor.backingOff.store(0, std::memory_order_release);
        return 0;
    }
    // A crash loop: back off (as OTP supervisors do) instead of spinning.
    const size_t excess = recentCrashesNs_.size() - options_.restartLimit;
    const uint64_t delay = std::min<uint64_t>(10'000'000'000ull, 500'000'000ull << std::min<size_t>(excess, 5));
    segment_.supervisor.backingOff.store(1, std::memory_order_release);
    spdlog::error("{} crashes within {} s: crash loop; the next replacement starts in {:.1f} s", recentCrashesNs_.size(),
                  options_.restartWindowS, delay / 1e9);
    return delay;
}

void Supervisor::forgiveFaultsBeforeDeviceLoss(uint64_t nowNs) {
    // A device does not vanish for every process at the same instant: while a JACK server
    // dies, one process stops being run (a "hang") or aborts inside libjack before any
    // stream reports the loss. Faults in the second before the loss was seen are the
    // loss's, not crashes of the engine: they leave the crash count and the crash loop.
    size_t forgiven = 0;
    while (!recentCrashesNs_.empty() && nowNs - recentCrashesNs_.back() <= kFaultsBeforeDeviceLossNs) {
        recentCrashesNs_.pop_back();
        ++forgiven;
    }
    if (forgiven == 0) return;
    segment_.supervisor.crashCount.fetch_sub(forgiven, std::memory_order_relaxed);
    spdlog::warn("{} fault(s) in the second before were the device's loss, not crashes (crash count corrected)", forgiven);
}

void Supervisor::scheduleRespawn(Kind kind, uint32_t slot, WorkerRole role, uint64_t notBeforeNs) {
    Child& c = child(kind, slot);
    c.respawnAtNs = std::max<uint64_t>(notBeforeNs, 1);
    c.respawnRole = role;
}

void Supervisor::promoteStandby(uint32_t failedSlot, uint64_t noticedNs) {
    const uint32_t other = (failedSlot + 1) % kWorkerSlots;
    Child& standby = workers_[other];
    const bool ready = segment_.slots[other].callbacks.load(std::memory_order_acquire) > 0 ||
                       (options_.exclusiveDevice && segment_.slots[other].state.load(std::memory_order_acquire) ==
                                                        static_cast<uint32_t>(WorkerState::Warm));
    if (standby.process.running() && ready) {
        segment_.slots[other].role.store(static_cast<uint32_t>(WorkerRole::Active), std::memory_order_release);
        segment_.control.activeSlot.store(other, std::memory_order_release);
        // Its control thread marks it active (and drains its ring for it) when it next
        // loops; a sleeping one is woken for that rather than left for up to 50 ms.
        router_.wakeNow(other);
        segment_.supervisor.failovers.fetch_add(1, std::memory_order_relaxed);
        const uint64_t us = (monotonicNs() - noticedNs) / 1000;
        recordDuration(segment_.supervisor.failoverUsLast, segment_.supervisor.failoverUsMax, us);
        const OutputMetrics& output = segment_.output;
        spdlog::warn("failover: worker {} (pid {}) is active now (switched {} us after the fault was noticed; output "
                     "so far: {} blocks from the standby, {} unfilled, {} of {} compared blocks identical, lag {})",
                     other, standby.process.pid(), us, output.fromStandby.load(), output.unfilled.load(),
                     output.matched.load(), output.compared.load(), output.lagBlocks.load());
        standby.rebuilding = false;
        return;
    }
    // Nothing to fail over to: start from the state table (an audible gap).
    segment_.supervisor.coldStarts.fetch_add(1, std::memory_order_relaxed);
    if (deviceGoneSinceNs_ == 0)
        spdlog::error("no standby worker can take over: cold start from the state table (the sound has a gap)");
    segment_.control.activeSlot.store(failedSlot, std::memory_order_release);
    scheduleRespawn(Kind::Worker, failedSlot, WorkerRole::Active, monotonicNs());
}

void Supervisor::onFault(Kind kind, uint32_t slot, const std::string& why, uint64_t noticedNs) {
    Child& c = child(kind, slot);
    if (c.process.pid() <= 0) return;  // already handled (pidfd and sentinel both fire)
    WorkerSlot& info = slotInfo(kind, slot);
    const pid_t pid = c.process.pid();

    // Fence first: the process's epoch becomes stale, so even if it runs on for a moment it
    // may neither publish a block nor consume a command.
    fenceSlot(segment_.control, info);
    // A fenced worker has no role any more: from this instant the status shows one active
    // worker at most (the standby, once promoted), never the failed one beside it.
    if (kind == Kind::Worker) info.role.store(static_cast<uint32_t>(WorkerRole::None), std::memory_order_release);
    segment_.supervisor.fencings.fetch_add(1, std::memory_order_relaxed);
    const uint64_t lastBeatNs = info.lastCallbackNs.load(std::memory_order_acquire);
    const uint64_t detectionUs = lastBeatNs != 0 && lastBeatNs < noticedNs ? (noticedNs - lastBeatNs) / 1000 : 0;
    if (detectionUs != 0)
        recordDuration(segment_.supervisor.detectionUsLast, segment_.supervisor.detectionUsMax, detectionUs);
    const bool wasActiveWorker =
        kind == Kind::Worker && segment_.control.activeSlot.load(std::memory_order_acquire) == slot;
    const bool wasPlayingOutput =
        kind == Kind::Output && segment_.output.writerSlot.load(std::memory_order_acquire) == slot;
    // A playing output stage is lost whether sustaind switches now or the standby stage took
    // over by itself before: seen by checkOutputTakeover (takenOver), or not yet (its role
    // still says it plays). Counted once, here: a stage merely late is a cover, not a loss.
    const bool playingOutputLost =
        kind == Kind::Output &&
        (wasPlayingOutput || c.takenOver ||
         info.role.load(std::memory_order_acquire) == static_cast<uint32_t>(WorkerRole::Active));
    SUSTAIN_FAULT_POINT(FaultPoint::FenceBeforeSwitch);
    // Switch before the kill: tearing down a process with locked memory and a JACK client
    // takes milliseconds, and the switch must not wait for it.
    if (wasActiveWorker) promoteStandby(slot, noticedNs);
    // Its ports are in the mix (direct layout, or an output stage): take them out before
    // JACK mixes its stale buffer any longer (it would until it drops the client).
    if (kind == Kind::Output || options_.layout == OutputLayout::Direct)
        graph_.disconnectClient(jackClientName(kind, slot));
    // Never waits for good: a process stuck in an uninterruptible wait (state D) would hold
    // up the supervision of everything else. One not gone within killAndReap's bound is
    // reaped later (reapDying), and its slot is refilled only then.
    const bool gone = c.process.tryReap() || c.process.killAndReap();
    const std::string exit = gone ? c.process.exit().describe() : "killed (SIGKILL), not gone yet";
    const auto reason = static_cast<WorkerExit>(info.exitReason.load(std::memory_order_acquire));
    // A replacement finding no device means the same: the engine did start on it.
    const bool deviceGone = reason == WorkerExit::DeviceLost || reason == WorkerExit::NoDevice;
    forget(kind, slot);
    graceUntilNs_ = monotonicNs() + kGraphChangeGraceNs;
    const uint64_t now = monotonicNs();
    uint64_t delay = 0;
    if (deviceGone) {
        // Not a crash: the device went away under every process at once. Retry each second.
        if (deviceGoneSinceNs_ == 0) {
            deviceGoneSinceNs_ = now;
            dropPrepared();  // its JACK client is on a server that is gone
            segment_.supervisor.deviceLosses.fetch_add(1, std::memory_order_relaxed);
            spdlog::error("the audio device is gone ({} (pid {}) lost its stream): waiting for it to come back, "
                          "trying every {} s", name(kind, slot), pid, kDeviceRetryNs / 1'000'000'000);
            forgiveFaultsBeforeDeviceLoss(now);
        } else {
            spdlog::debug("{} (pid {}) {}: still no audio device", name(kind, slot), pid, exit);
        }
        delay = kDeviceRetryNs;
    } else {
        segment_.supervisor.crashCount.fetch_add(1, std::memory_order_relaxed);
        spdlog::error("{} (pid {}) {}{}; detected {} us after its last callback", name(kind, slot), pid,
                      why.empty() ? "" : why + "; ", exit, detectionUs);
        delay = crashDelayNs(now);
    }
    if (kind == Kind::Worker) {
        if (wasActiveWorker && segment_.control.activeSlot.load(std::memory_order_acquire) == slot) {
            // Cold start (promoteStandby scheduled it for now); without a device, in a second.
            if (deviceGone) scheduleRespawn(Kind::Worker, slot, WorkerRole::Active, now + delay);
            return;
        }
        if (options_.standby) scheduleRespawn(Kind::Worker, slot, WorkerRole::Standby, now + delay);
        return;
    }
    const uint32_t other = (slot + 1) % kOutputSlots;
    // The standby stage plays instead; a device gone under every process is counted apart.
    if (playingOutputLost && !deviceGone && outputs_[other].process.running())
        segment_.supervisor.outputFailovers.fetch_add(1, std::memory_order_relaxed);
    if (wasPlayingOutput) {
        uint32_t expected = slot;
        if (outputs_[other].process.running()) {
            // The standby output stage has usually taken over by itself already.
            segment_.output.writerSlot.compare_exchange_strong(expected, other, std::memory_order_acq_rel);
            spdlog::warn("output stage {} plays now", other);
        } else {
            scheduleRespawn(Kind::Output, slot, WorkerRole::Active, now + delay);
            return;
        }
    }
    if (options_.standby) scheduleRespawn(Kind::Output, slot, WorkerRole::Standby, now + delay);
}

void Supervisor::checkOutputTakeover(uint64_t nowNs) {
    const uint32_t writer = segment_.output.writerSlot.load(std::memory_order_acquire) % kOutputSlots;
    const uint32_t previous = (writer + 1) % kOutputSlots;
    segment_.outputs[writer].role.store(static_cast<uint32_t>(WorkerRole::Active), std::memory_order_release);
    Child& c = outputs_[previous];
    WorkerSlot& info = segment_.outputs[previous];
    if (!c.process.running()) return;  // dead: its death is handled where it is seen
    const uint64_t callbacks = info.callbacks.load(std::memory_order_acquire);
    if (!c.takenOver) {
        if (info.role.load(std::memory_order_relaxed) != static_cast<uint32_t>(WorkerRole::Active)) return;
        // The standby stage took over: the playing one did not run for kTakeoverCycles.
        // On a loaded machine JACK now and then starts a client late; killing such a stage
        // would change the graph (which makes JACK skip clients again) and count a crash for
        // nothing. It stays as the standby if it runs again (it plays silence as long as it
        // is not the writer); takenOverProcessHung decides when it will not.
        info.role.store(static_cast<uint32_t>(WorkerRole::Standby), std::memory_order_release);
        noteTakeover(c, callbacks, nowNs);
        return;
    }
    if (callbacks != c.callbacksAtTakeover) {
        c.takenOver = false;
        segment_.supervisor.outputCovers.fetch_add(1, std::memory_order_relaxed);
        // A spare again at once (its own control loop says so too, within 50 ms).
        auto playing = static_cast<uint32_t>(WorkerState::Active);
        info.state.compare_exchange_strong(playing, static_cast<uint32_t>(WorkerState::Warm), std::memory_order_acq_rel);
        spdlog::warn("{} (pid {}) was not run for {} cycles and output stage {} took over; it runs again and "
                     "stays, as the standby", name(Kind::Output, previous), c.process.pid(), kTakeoverCycles, writer);
        return;
    }
    // onFault counts the loss (takenOver still set) and forgets the process.
    if (takenOverProcessHung(c, nowNs)) onFault(Kind::Output, previous, "stopped playing; the standby output stage took over", nowNs);
}

void Supervisor::noteTakeover(Child& c, uint64_t callbacks, uint64_t nowNs) {
    c.takenOver = true;
    c.callbacksAtTakeover = callbacks;
    c.clockAtTakeover = cycleClock_;
    c.audioThread = c.process.audioThread();
    c.cpuAtTakeoverNs = c.process.threadCpuNs(c.audioThread);
    c.wallAtTakeoverNs = nowNs;
}

// A process in the mix that a standby took over from (it missed cycles) and that has not run
// a callback since: hung, or only not run by JACK? A dead one is seen through its pidfd
// before this. After kConfirmTakeoverCycles of the engine's clock: one stopped by a signal
// is hung, and so is one whose audio thread keeps a core busy without finishing a callback
// (a loop: it used at least half the time since as CPU; the process's other threads may be
// busy for good reasons, JACK telling it about a new client's ports, say); one whose audio
// thread sleeps is waiting for JACK to run it, which costs nothing heard (the standby plays
// and silences its buffer: engine/rt/stale_buffer.h), so it is given a third of the hang
// limit before it is taken for hung all the same. Cycles the machine did not run its CPU
// (cpu_progress.h) do not count.
bool Supervisor::takenOverProcessHung(Child& c, uint64_t nowNs) {
    if (waitsOnUnrunCpu(c, nowNs)) {
        noteTakeover(c, c.callbacksAtTakeover, nowNs);  // the machine's cycles: counted from now
        return false;
    }
    const uint64_t cycles = cycleClock_ - c.clockAtTakeover;
    if (cycles >= std::max<uint64_t>(options_.hangCycles / 3, kConfirmTakeoverCycles)) return true;
    if (cycles < kConfirmTakeoverCycles) return false;
    if (c.process.stopped()) return true;
    const uint64_t cpu = c.process.threadCpuNs(c.audioThread);
    return cpu >= c.cpuAtTakeoverNs && nowNs > c.wallAtTakeoverNs &&
           (cpu - c.cpuAtTakeoverNs) * 2 >= nowNs - c.wallAtTakeoverNs;
}

bool Supervisor::waitsOnUnrunCpu(Child& c, uint64_t nowNs) {
    if (c.audioThread == 0) c.audioThread = c.process.audioThread();
    const int cpu = c.process.threadCpu(c.audioThread);
    if (cpu < 0) return false;
    if (!cpusSampled_) {
        cpus_.sample(nowNs);
        cpusSampled_ = true;
    }
    return !cpus_.running(cpu, nowNs);
}

void Supervisor::advanceCycleClock() {
    uint64_t advance = 0;
    for (Kind kind : {Kind::Worker, Kind::Output}) {
        for (uint32_t slot = 0; slot < kWorkerSlots; ++slot) {
            Child& c = child(kind, slot);
            if (!c.process.running()) continue;
            const uint64_t callbacks = slotInfo(kind, slot).callbacks.load(std::memory_order_acquire);
            if (callbacks > c.clockSeen) advance = std::max(advance, callbacks - c.clockSeen);
            c.clockSeen = callbacks;
        }
    }
    cycleClock_ += advance;
}

uint64_t Supervisor::startupLimitNs() const {
    // A process that takes far longer to start than any start seen so far is hung (stopped,
    // or looping before its stream runs), not slow: kStartupSlack times the slowest start,
    // at least kMinStartupLimitNs. The first start has nothing to compare with: the fixed
    // limit. A slow machine or a sanitizer build makes every start slow, and so the limit.
    if (slowestStartNs_ == 0) return kStartupLimitNs;
    return std::clamp(kStartupSlack * slowestStartNs_, kMinStartupLimitNs, kStartupLimitNs);
}

// A prepared worker past its own limit is hung only if it spins: its main thread, which
// runs the start, used at least a quarter of the time since its go as CPU. One that waits
// (for JACK, which may be removing a dead client right then, or for a CPU the machine does
// not run) is slow, not hung, and is judged by the general limit.
bool Supervisor::spinsAsItStarts(const Child& c, uint64_t startedNs) const {
    const uint64_t cpuNs = c.process.threadCpuNs(c.process.pid());
    return cpuNs > c.mainCpuAtSpawnNs && 4 * (cpuNs - c.mainCpuAtSpawnNs) >= startedNs;
}

uint64_t Supervisor::startupLimitNs(const Child& c) const {
    // A prepared worker was loaded, attached and locked in memory while it waited; from its
    // go it only initialises the audio library and opens its stream, a fraction of a start
    // from nothing. Judged by what prepared workers took from the go (the same slack, at
    // least kMinPreparedStartupLimitNs), one that loops is found sooner while the active
    // renders alone (spinsAsItStarts). Until one prepared start was seen, and never beyond
    // it, the general limit.
    if (!c.prepared || slowestPreparedStartNs_ == 0) return startupLimitNs();
    return std::clamp(kStartupSlack * slowestPreparedStartNs_, kMinPreparedStartupLimitNs, startupLimitNs());
}

void Supervisor::checkHang(Kind kind, uint32_t slot, uint64_t nowNs) {
    Child& c = child(kind, slot);
    if (!c.process.running()) return;
    const uint64_t reference = cycleClock_;
    WorkerSlot& info = slotInfo(kind, slot);
    const uint64_t callbacks = info.callbacks.load(std::memory_order_acquire);
    const uint64_t beats = info.controlBeats.load(std::memory_order_acquire);
    const bool fresh = c.progressNs == c.spawnedNs;
    if (callbacks != c.lastCallbacks || fresh) {
        c.lastCallbacks = callbacks;
        c.referenceAtProgress = reference;
        c.progressNs = nowNs;
    }
    if (beats != c.lastBeats || fresh) {
        c.lastBeats = beats;
        c.referenceAtBeat = reference;
    }
    const bool waitingForDevice = kind == Kind::Worker && options_.exclusiveDevice &&
                                  info.role.load(std::memory_order_acquire) == static_cast<uint32_t>(WorkerRole::Standby);
    // A process stopped by a signal is hung, not slow; its state says so at once, where
    // counting would wait: for the startup limit (seconds) before its first callback, or
    // for the wall-clock last resort (a second of stale sound) when nothing else runs to
    // count cycles by. Read only once its callbacks stalled (or have not begun) for a while.
    // Its state is no count of cycles, so the grace after a graph change does not hold it
    // up (a replacement stopped as it starts would wait out the grace of its own start).
    if (!waitingForDevice && nowNs - c.progressNs > kStoppedCheckAfterNs && c.process.stopped()) {
        onFault(kind, slot, "stopped by a signal: hung", nowNs);
        return;
    }
    if (nowNs < graceUntilNs_) {
        // Cycles during the grace time do not count.
        c.referenceAtProgress = reference;
        c.referenceAtBeat = reference;
        return;
    }
    if (callbacks == 0 && !waitingForDevice) {
        const uint64_t startedNs = nowNs - c.spawnedNs;
        if (startedNs > startupLimitNs())
            onFault(kind, slot, fmt::format("never started rendering ({:.1f} s after its start)", startupLimitNs() / 1e9),
                    nowNs);
        else if (startedNs > startupLimitNs(c) && spinsAsItStarts(c, startedNs))
            onFault(kind, slot, fmt::format("loops as it starts (its main thread busy {:.1f} s after its go, beyond "
                                            "the {:.1f} s a prepared worker may take)",
                                            startedNs / 1e9, startupLimitNs(c) / 1e9), nowNs);
        return;
    }
    if (callbacks != 0 && !c.startTimed) {
        c.startTimed = true;
        uint64_t& slowest = c.prepared ? slowestPreparedStartNs_ : slowestStartNs_;
        slowest = std::max(slowest, nowNs - c.spawnedNs);
    }
    if (waitingForDevice) {
        // No stream, so no callbacks to count: only its control thread shows it is alive.
        if (reference - c.referenceAtBeat >= options_.controlHangCycles)
            onFault(kind, slot, "its control thread missed " + std::to_string(reference - c.referenceAtBeat) +
                                    " cycles: hung", nowNs);
        return;
    }
    // Counted in cycles of the audio clock, not in wall-clock time (which gives false
    // alarms on a loaded machine); the wall clock is only the last resort when nothing else
    // runs to count by. Cycles missed while the machine did not run the CPU its audio thread
    // waits on are the machine's, not a hang: they do not add to the count (cpu_progress.h),
    // which stays at kBehindCycles so that its CPU is watched on every tick.
    // Nor do cycles a worker misses while its slot's output stage, above it on the same CPU
    // (decisions.md), is behind too: that stage is judged, and a loop in it holds the CPU.
    if (reference - c.referenceAtProgress > kBehindCycles &&
        ((kind == Kind::Worker && options_.layout == OutputLayout::Relay && behind(Kind::Output, slot)) ||
         waitsOnUnrunCpu(c, nowNs)))
        c.referenceAtProgress = reference - kBehindCycles;
    const uint64_t missed = reference - c.referenceAtProgress;
    if (missed >= options_.hangCycles || nowNs - c.progressNs > secondsToNs(options_.stallTimeoutS)) {
        onFault(kind, slot, "missed " + std::to_string(missed) + " cycles: hung", nowNs);
        return;
    }
    // The control thread (commands, logging, shutdown) can hang on its own: it loops at
    // least every 50 ms, so many cycles without a loop mean a deadlock or an endless loop.
    // Until its first loop it is still starting (after the first callback it opens its
    // JACK clock client, hundreds of milliseconds on a loaded machine or in a sanitizer
    // build): judged by the startup limit, as a process before its first callback.
    if (beats == 0) {
        if (nowNs - c.spawnedNs > startupLimitNs())
            onFault(kind, slot, fmt::format("its control thread never looped ({:.1f} s after its start)",
                                            startupLimitNs() / 1e9), nowNs);
        return;
    }
    const uint64_t silentBeats = reference - c.referenceAtBeat;
    if (silentBeats >= options_.controlHangCycles)
        onFault(kind, slot, "its control thread missed " + std::to_string(silentBeats) + " cycles: hung", nowNs);
}

void Supervisor::updateHealth() {
    const uint32_t active = segment_.control.activeSlot.load(std::memory_order_acquire);
    const uint32_t standby = (active + 1) % kWorkerSlots;
    const bool relay = options_.layout == OutputLayout::Relay;
    const bool spare = options_.standby && workers_[standby].process.running() &&
                       segment_.slots[standby].state.load(std::memory_order_acquire) == static_cast<uint32_t>(WorkerState::Warm);
    segment_.supervisor.spareReady.store(spare ? 1 : 0, std::memory_order_release);
    const uint32_t writer = segment_.output.writerSlot.load(std::memory_order_acquire) % kOutputSlots;
    const uint32_t spareOutput = (writer + 1) % kOutputSlots;
    const bool outputSpare = relay && options_.standby && outputs_[spareOutput].process.running() &&
                             segment_.outputs[spareOutput].state.load(std::memory_order_acquire) ==
                                 static_cast<uint32_t>(WorkerState::Warm);
    segment_.supervisor.outputSpareReady.store(outputSpare ? 1 : 0, std::memory_order_release);
    DegradedReason reason = DegradedReason::None;
    if (deviceGoneSinceNs_ != 0)
        reason = DegradedReason::WaitingForDevice;
    else if (segment_.supervisor.backingOff.load(std::memory_order_relaxed) != 0)
        reason = DegradedReason::BackingOff;
    else if (segment_.supervisor.stuckProcesses.load(std::memory_order_relaxed) != 0)
        reason = DegradedReason::StuckProcess;
    else if (options_.standby && !spare)
        reason = DegradedReason::NoSpare;
    else if (relay && options_.standby && !outputSpare)
        reason = DegradedReason::NoOutputSpare;
    segment_.supervisor.degradedReason.store(static_cast<uint32_t>(reason), std::memory_order_release);
}

void Supervisor::reapDying(uint64_t nowNs) {
    for (Kind kind : {Kind::Worker, Kind::Output}) {
        for (uint32_t slot = 0; slot < kWorkerSlots; ++slot) {
            Child& c = child(kind, slot);
            if (c.dying.pid() <= 0) continue;
            const pid_t pid = c.dying.pid();
            if (c.dying.tryReap()) {
                if (c.dyingReported)
                    spdlog::warn("{} (pid {}) is gone at last, {:.1f} s after it was killed; its slot is refilled",
                                 name(kind, slot), pid, (nowNs - c.dyingSinceNs) / 1e9);
                c.dying.release();
                segment_.supervisor.stuckProcesses.fetch_sub(1, std::memory_order_relaxed);
            } else if (!c.dyingReported && nowNs - c.dyingSinceNs > kStuckReportNs) {
                c.dyingReported = true;
                spdlog::error("{} (pid {}) does not die: it is stuck in the kernel (an uninterruptible wait, state D); "
                              "its slot stays empty until the kernel lets it go", name(kind, slot), pid);
            }
        }
    }
}

void Supervisor::tick() {
    const uint64_t now = monotonicNs();
    segment_.control.supervisorHeartbeatNs.store(now, std::memory_order_release);
    const bool relay = options_.layout == OutputLayout::Relay;
    cpusSampled_ = false;

    // Replacements that are due, in slots whose killed process is gone.
    reapDying(now);
    for (Kind kind : {Kind::Worker, Kind::Output}) {
        for (uint32_t slot = 0; slot < kWorkerSlots; ++slot) {
            Child& c = child(kind, slot);
            if (c.respawnAtNs == 0 || now < c.respawnAtNs || c.process.running() || c.dying.pid() > 0) continue;
            const WorkerRole role = c.respawnRole;
            std::string error;
            if (!spawn(kind, slot, role, error)) {
                spdlog::error("cannot start {}: {}; trying again in 1 s", name(kind, slot), error);
                scheduleRespawn(kind, slot, role, now + 1'000'000'000ull);
                continue;
            }
            c.rebuilding = true;
            segment_.supervisor.replacements.fetch_add(1, std::memory_order_relaxed);
            segment_.supervisor.lastRestartNs.store(now, std::memory_order_relaxed);
        }
    }

    const uint32_t active = segment_.control.activeSlot.load(std::memory_order_acquire) % kWorkerSlots;
    const uint32_t standby = (active + 1) % kWorkerSlots;
    // Direct layout: the standby counted two cycles without the active advancing and plays
    // instead. That alone does not tell a dead or hung active from one JACK merely did not
    // run for a cycle or two (a late wake-up, a graph change): the active's own callback
    // count does. If it moves again the standby hands back by itself and nothing is fenced;
    // once takenOverProcessHung says it is hung, the active is taken out of the mix and the
    // switch made official. (A death is seen sooner through the pidfd.)
    if (!relay && workers_[standby].process.running() && workers_[active].process.running() &&
        segment_.slots[standby].takeover.load(std::memory_order_acquire) != 0) {
        Child& a = workers_[active];
        const uint64_t callbacks = segment_.slots[active].callbacks.load(std::memory_order_acquire);
        if (!a.takenOver) {
            noteTakeover(a, callbacks, now);
        } else if (callbacks != a.callbacksAtTakeover) {
            a.takenOver = false;
            spdlog::info("worker {} (pid {}) was not run for a few cycles and the standby played meanwhile; it runs "
                         "again and plays on", active, a.process.pid());
        } else if (takenOverProcessHung(a, now)) {
            a.takenOver = false;
            onFault(Kind::Worker, active, "stopped rendering; the standby took over",
                    segment_.slots[standby].takeoverNs.load(std::memory_order_relaxed));
        }
    } else {
        workers_[active].takenOver = false;
    }
    // Hangs, counted in cycles of the audio clock.
    advanceCycleClock();
    if (relay) checkOutputTakeover(now);
    for (uint32_t slot = 0; slot < kWorkerSlots; ++slot) checkHang(Kind::Worker, slot, now);
    for (uint32_t slot = 0; slot < kOutputSlots; ++slot) checkHang(Kind::Output, slot, now);
    // Nobody behind: while ticks are steady (16 ms apart) the CPUs' times are still read, so
    // that the first tick to see a process behind knows whether its CPU ran meanwhile; at
    // 2 ms apart the next one behind starts afresh.
    if (!cpusSampled_) {
        if (tickNs_ == kSteadyTickNs)
            cpus_.sample(now);
        else
            cpus_.reset();
    }

    // Relay layout: a worker's stream only gives it the period clock; its ports are taken
    // out of the graph as soon as it runs, so that a hung worker holds up nothing JACK
    // would otherwise wait for (it writes silence there anyway).
    if (relay) {
        for (uint32_t slot = 0; slot < kWorkerSlots; ++slot) {
            Child& c = workers_[slot];
            if (c.detached || !c.process.running() || segment_.slots[slot].callbacks.load(std::memory_order_acquire) == 0)
                continue;
            graph_.disconnectClient(jackClientName(Kind::Worker, slot));
            c.detached = true;
        }
    }

    // The device is back once the active worker renders again.
    if (deviceGoneSinceNs_ != 0 && workers_[active].process.running() && workers_[active].spawnedNs > deviceGoneSinceNs_ &&
        segment_.slots[active].state.load(std::memory_order_acquire) == static_cast<uint32_t>(WorkerState::Active) &&
        segment_.slots[active].callbacks.load(std::memory_order_acquire) > 0) {
        spdlog::info("the audio device is back after {:.1f} s: playing again", (now - deviceGoneSinceNs_) / 1e9);
        deviceGoneSinceNs_ = 0;
    }

    // Rebuilds that completed: a replacement standby renders in step.
    for (uint32_t slot = 0; slot < kWorkerSlots; ++slot) {
        Child& c = workers_[slot];
        const auto state = static_cast<WorkerState>(segment_.slots[slot].state.load(std::memory_order_acquire));
        if (c.rebuilding && c.process.running() && (state == WorkerState::Warm || state == WorkerState::Active)) {
            c.rebuilding = false;
            const uint64_t us = (now - c.spawnedNs) / 1000;
            recordDuration(segment_.supervisor.rebuildUsLast, segment_.supervisor.rebuildUsMax, us);
            spdlog::info("worker {} (pid {}) renders in step: spare ready ({:.1f} ms after it was started)", slot,
                         c.process.pid(), us / 1000.0);
        }
    }
    keepPrepared(now);
    updateHealth();
    // The service manager's watchdog is answered from here: a hung loop stops the pings.
    if (notifier_ != nullptr) {
        notifier_->watchdog(now);
        notifier_->report(segment_.supervisor, options_.standby, relay);
    }
    setTickPeriod(steady(now) ? kSteadyTickNs : kTickNs);
}

void Supervisor::shutdown() {
    dropPrepared();
    segment_.control.shutdownRequested.store(1, std::memory_order_release);
    for (uint32_t slot = 0; slot < kWorkerSlots; ++slot) router_.wakeNow(slot);
    for (Child& c : outputs_) {
        const char byte = 'q';
        if (c.process.running() && write(c.process.wakeFd(), &byte, 1) < 0) { /* a wake is already pending */ }
    }
    const uint64_t deadline = monotonicNs() + secondsToNs(options_.shutdownTimeoutS);
    for (Kind kind : {Kind::Worker, Kind::Output}) {
        for (uint32_t slot = 0; slot < kWorkerSlots; ++slot) {
            Child& c = child(kind, slot);
            if (!c.process.running()) continue;
            while (monotonicNs() < deadline && !c.process.tryReap()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
            if (!c.process.tryReap()) {
                spdlog::warn("{} did not stop within {} s; killing it", name(kind, slot), options_.shutdownTimeoutS);
                if (!c.process.killAndReap())
                    spdlog::error("{} does not die (stuck in the kernel): left to the kernel", name(kind, slot));
            }
            forget(kind, slot);
        }
    }
}

int Supervisor::run() {
    // This thread only: the OSC and graph threads started before keep normal priority.
    requestRealtimePriority(kSupervisorPriority, "supervision loop");
    epoll_event events[16];
    for (;;) {
        const int count = epoll_wait(epoll_, events, 16, 100);
        bool ticked = false;  // also after a death: its replacement is not left to a steady tick
        for (int i = 0; i < count; ++i) {
            const uint64_t tag = events[i].data.u64;
            if (tag == kTagSignal) {
                signalfd_siginfo info{};
                if (read(signalFd_, &info, sizeof info) == sizeof info) {
                    if (info.ssi_signo == SIGHUP && onReload_) {
                        // Re-read the configuration; the audio path is not touched.
                        onReload_();
                        continue;
                    }
                    spdlog::info("{}: fading out and stopping", sigabbrev_np(static_cast<int>(info.ssi_signo)));
                    if (notifier_ != nullptr) notifier_->stopping();
                    shutdown();
                    return 0;
                }
            } else if (tag == kTagTimer) {
                uint64_t expirations = 0;
                if (read(timerFd_, &expirations, sizeof expirations) < 0) { /* spurious wake */ }
                ticked = true;
            } else if ((tag & ~kTagSentinel) == kTagPrepared) {
                if ((tag & kTagSentinel) != 0) {
                    char bytes[64];
                    const ssize_t got = read(prepared_.wakeFd(), bytes, sizeof bytes);
                    if (got > 0 || (got < 0 && errno == EAGAIN)) continue;
                }
                losePrepared("", monotonicNs());
                ticked = true;
            } else if ((tag & kTagChild) != 0) {
                const auto kind = static_cast<Kind>((tag >> 8) & 0xf);
                const auto slot = static_cast<uint32_t>(tag & 0xff) % kWorkerSlots;
                const uint64_t noticedNs = monotonicNs();
                if ((tag & kTagSentinel) != 0) {
                    // Drain whatever is readable; only EOF or hang-up means death.
                    char bytes[64];
                    const ssize_t got = read(child(kind, slot).process.wakeFd(), bytes, sizeof bytes);
                    if (got > 0 || (got < 0 && errno == EAGAIN)) continue;
                }
                onFault(kind, slot, "", noticedNs);
                ticked = true;
            }
        }
        if (ticked || count == 0) tick();
    }
}

}  // namespace sustain
