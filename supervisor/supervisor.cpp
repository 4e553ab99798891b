#include "supervisor/supervisor.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "shm/clock.h"
#include "shm/spsc_ring.h"

namespace sustain {

namespace {
constexpr uint64_t kTagSignal = 1;
constexpr uint64_t kTagTimer = 2;
constexpr uint64_t kTagPidFd = 0x100;     // | slot
constexpr uint64_t kTagSentinel = 0x200;  // | slot
constexpr uint64_t kTimerPeriodNs = 50'000'000;

uint64_t secondsToNs(double seconds) { return static_cast<uint64_t>(seconds * 1e9); }
}  // namespace

Supervisor::Supervisor(Segment& segment, CommandRouter& router, SupervisorOptions options)
    : segment_(segment), router_(router), options_(std::move(options)) {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGHUP);
    signalFd_ = signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
    watch(signalFd_, kTagSignal);
    timerFd_ = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    itimerspec period{};
    period.it_interval.tv_nsec = kTimerPeriodNs;
    period.it_value.tv_nsec = kTimerPeriodNs;
    timerfd_settime(timerFd_, 0, &period, nullptr);
    watch(timerFd_, kTagTimer);
}

Supervisor::~Supervisor() {
    for (WorkerProcess& worker : workers_) worker.killAndReap();
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

bool Supervisor::spawnWorker(uint32_t slot, std::string& error) {
    WorkerSlot& info = segment_.slots[slot];
    // The slot is empty: no producer (detached) and no consumer (no worker) touch the ring.
    SpscRing<Command>::initialize(segment_.rings[slot].indices, kCommandRingCapacity);
    info.pid.store(0, std::memory_order_relaxed);
    info.callbacks.store(0, std::memory_order_relaxed);
    info.fadedOut.store(0, std::memory_order_relaxed);
    info.exitReason.store(0, std::memory_order_relaxed);
    info.role.store(static_cast<uint32_t>(WorkerRole::Active), std::memory_order_relaxed);
    info.epoch.store(segment_.control.epoch.load(std::memory_order_acquire), std::memory_order_relaxed);
    info.state.store(static_cast<uint32_t>(WorkerState::Starting), std::memory_order_release);

    WorkerProcess& worker = workers_[slot];
    // Route commands before the worker reads the table: whatever it misses in its
    // snapshot is then in its ring (it skips what the snapshot already holds).
    if (!worker.spawn(options_.workerPath,
                      {"--instance", options_.instance, "--slot", std::to_string(slot), "--wake-fd", "3",
                       "--supervisor-pid", std::to_string(getpid()), "--log-level", options_.logLevel},
                      error)) {
        info.state.store(static_cast<uint32_t>(WorkerState::Dead), std::memory_order_release);
        return false;
    }
    router_.attachWorker(slot, worker.wakeFd());
    info.pid.store(worker.pid(), std::memory_order_release);
    watch(worker.pidFd(), kTagPidFd | slot);
    watch(worker.wakeFd(), kTagSentinel | slot);
    lastCallbacks_ = 0;
    lastProgressNs_ = monotonicNs();
    spdlog::info("worker {} started (pid {})", slot, worker.pid());
    return true;
}

bool Supervisor::startFirstWorker(std::string& error) {
    segment_.control.epoch.store(1, std::memory_order_release);
    segment_.control.activeSlot.store(0, std::memory_order_release);
    if (!spawnWorker(0, error)) return false;
    WorkerProcess& worker = workers_[0];
    WorkerSlot& info = segment_.slots[0];
    const uint64_t deadline = monotonicNs() + 10'000'000'000ull;
    while (monotonicNs() < deadline) {
        if (info.state.load(std::memory_order_acquire) == static_cast<uint32_t>(WorkerState::Active)) {
            segment_.control.ready.store(1, std::memory_order_release);
            return true;
        }
        if (worker.tryReap()) {
            error = "the worker " + worker.exit().describe();
            switch (static_cast<WorkerExit>(info.exitReason.load(std::memory_order_acquire))) {
                case WorkerExit::NoDevice: error += ": no usable audio output device (see its message above)"; break;
                case WorkerExit::StreamFailed: error += ": the audio stream could not start (see above)"; break;
                case WorkerExit::AttachFailed: error += ": it could not attach to the shared memory (see above)"; break;
                default: break;
            }
            unwatch(worker.pidFd());
            unwatch(worker.wakeFd());
            router_.detachWorker(0);
            worker.release();
            info.state.store(static_cast<uint32_t>(WorkerState::Dead), std::memory_order_release);
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    error = "the worker did not start rendering within 10 s";
    return false;
}

void Supervisor::onWorkerGone(uint32_t slot) {
    WorkerProcess& worker = workers_[slot];
    if (worker.pid() <= 0) return;
    unwatch(worker.pidFd());
    unwatch(worker.wakeFd());
    router_.detachWorker(slot);
    if (!worker.tryReap()) worker.killAndReap();  // sentinel EOF comes first sometimes
    const ChildExit exit = worker.exit();
    const pid_t pid = worker.pid();
    worker.release();
    WorkerSlot& info = segment_.slots[slot];
    info.state.store(static_cast<uint32_t>(WorkerState::Dead), std::memory_order_release);
    info.pid.store(0, std::memory_order_release);
    segment_.control.ready.store(0, std::memory_order_release);

    const uint64_t now = monotonicNs();
    segment_.supervisor.crashCount.fetch_add(1, std::memory_order_relaxed);
    recentCrashesNs_.push_back(now);
    while (!recentCrashesNs_.empty() && now - recentCrashesNs_.front() > secondsToNs(options_.restartWindowS))
        recentCrashesNs_.pop_front();
    uint64_t delayNs = 0;
    if (recentCrashesNs_.size() > options_.restartLimit) {
        // A crash loop: back off (as OTP supervisors do) instead of spinning.
        const size_t excess = recentCrashesNs_.size() - options_.restartLimit;
        delayNs = std::min<uint64_t>(10'000'000'000ull, 500'000'000ull << std::min<size_t>(excess, 5));
        segment_.supervisor.backingOff.store(1, std::memory_order_release);
        spdlog::error("worker {} (pid {}) {}; {} crashes within {} s: crash loop, restarting in {:.1f} s", slot, pid,
                      exit.describe(), recentCrashesNs_.size(), options_.restartWindowS, delayNs / 1e9);
    } else {
        segment_.supervisor.backingOff.store(0, std::memory_order_release);
        spdlog::error("worker {} (pid {}) {}; restarting it now (the sound has a gap until it renders again)", slot,
                      pid, exit.describe());
    }
    restartAtNs_ = now + delayNs;
}

void Supervisor::restartDue() {
    if (restartAtNs_ == 0 || monotonicNs() < restartAtNs_) return;
    restartAtNs_ = 0;
    // A new epoch: whatever the old worker might still publish is ignored.
    segment_.control.epoch.fetch_add(1, std::memory_order_acq_rel);
    std::string error;
    if (!spawnWorker(0, error)) {
        spdlog::error("cannot restart the worker: {}; trying again in 1 s", error);
        restartAtNs_ = monotonicNs() + 1'000'000'000ull;
        return;
    }
    segment_.supervisor.replacements.fetch_add(1, std::memory_order_relaxed);
    segment_.supervisor.lastRestartNs.store(monotonicNs(), std::memory_order_relaxed);
}

void Supervisor::checkHeartbeats() {
    segment_.control.supervisorHeartbeatNs.store(monotonicNs(), std::memory_order_release);
    WorkerProcess& worker = workers_[0];
    if (!worker.running()) return;
    WorkerSlot& info = segment_.slots[0];
    const auto state = static_cast<WorkerState>(info.state.load(std::memory_order_acquire));
    if (state == WorkerState::Active && segment_.control.ready.load(std::memory_order_relaxed) == 0) {
        segment_.control.ready.store(1, std::memory_order_release);
        spdlog::info("worker 0 renders again");
    }
    const uint64_t callbacks = info.callbacks.load(std::memory_order_acquire);
    const uint64_t now = monotonicNs();
    if (callbacks != lastCallbacks_) {
        lastCallbacks_ = callbacks;
        lastProgressNs_ = now;
        return;
    }
    const uint64_t limit = state == WorkerState::Starting ? 10'000'000'000ull : secondsToNs(options_.stallTimeoutS);
    if (now - lastProgressNs_ > limit) {
        // Fencing before reuse: a hung worker is killed, and the new epoch keeps it
        // from publishing even if it were to wake up before the kill lands.
        spdlog::error("worker 0 (pid {}) has not rendered for {:.0f} ms: hung; killing it", worker.pid(),
                      (now - lastProgressNs_) / 1e6);
        info.state.store(static_cast<uint32_t>(WorkerState::Fenced), std::memory_order_release);
        segment_.control.epoch.fetch_add(1, std::memory_order_acq_rel);
        worker.killAndReap();
        onWorkerGone(0);
    }
}

void Supervisor::shutdown() {
    segment_.control.shutdownRequested.store(1, std::memory_order_release);
    WorkerProcess& worker = workers_[0];
    if (worker.running()) {
        router_.wakeNow(0);
        const uint64_t deadline = monotonicNs() + secondsToNs(options_.shutdownTimeoutS);
        while (monotonicNs() < deadline && !worker.tryReap()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        if (!worker.tryReap()) {
            spdlog::warn("worker 0 did not stop within {} s; killing it", options_.shutdownTimeoutS);
            worker.killAndReap();
        }
    }
    unwatch(worker.pidFd());
    unwatch(worker.wakeFd());
    router_.detachWorker(0);
    worker.release();
}

int Supervisor::run() {
    epoll_event events[8];
    for (;;) {
        const int count = epoll_wait(epoll_, events, 8, 100);
        for (int i = 0; i < count; ++i) {
            const uint64_t tag = events[i].data.u64;
            if (tag == kTagSignal) {
                signalfd_siginfo info{};
                while (read(signalFd_, &info, sizeof info) == sizeof info) {
                    spdlog::info("{}: fading out and stopping", sigabbrev_np(static_cast<int>(info.ssi_signo)));
                    shutdown();
                    return 0;
                }
            } else if (tag == kTagTimer) {
                uint64_t expirations = 0;
                if (read(timerFd_, &expirations, sizeof expirations) < 0) { /* spurious wake */ }
                checkHeartbeats();
            } else if ((tag & ~0xffull) == kTagPidFd || (tag & ~0xffull) == kTagSentinel) {
                const auto slot = static_cast<uint32_t>(tag & 0xff);
                if ((tag & ~0xffull) == kTagSentinel) {
                    // Drain whatever is readable; only EOF or hang-up means death.
                    char bytes[64];
                    const ssize_t got = read(workers_[slot].wakeFd(), bytes, sizeof bytes);
                    if (got > 0 || (got < 0 && errno == EAGAIN)) continue;
                }
                onWorkerGone(slot);
            }
        }
        restartDue();
    }
}

}  // namespace sustain
