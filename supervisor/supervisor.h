// sustaind's supervision: workers and output stages, failover, rebuild, shutdown.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "osc/command_router.h"
#include "shm/layout.h"
#include "supervisor/cpu_progress.h"
#include "supervisor/jack_graph.h"
#include "supervisor/service_notify.h"
#include "supervisor/worker_process.h"

namespace sustain {

struct SupervisorOptions {
    std::string instance;
    HelperBinary worker;  // sustain-worker
    HelperBinary output;  // sustain-output
    std::string logLevel = "info";
    OutputLayout layout = OutputLayout::Relay;
    bool standby = true;              // run a standby worker (and a standby output stage)
    bool exclusiveDevice = false;     // direct layout: the standby opens the device only when promoted
    uint32_t restartLimit = 5;        // more crashes than this ...
    double restartWindowS = 10.0;     // ... within this many seconds is a crash loop
    uint32_t hangCycles = 12;         // a process that missed this many cycles of the others is hung
    uint32_t controlHangCycles = 150; // a control thread that did not loop for this many cycles (200 ms) is hung
    double stallTimeoutS = 1.0;       // without any other process to count cycles by: wall-clock limit
    double shutdownTimeoutS = 2.0;    // time the processes get to fade out and exit
};

/// Runs the workers (active and standby) and, in the relay layout, the output stages
/// (playing and standby), and keeps them running. Everything happens on sustaind's main
/// thread in one epoll loop (signalfd, pidfds, sentinel sockets, a timerfd: every 2 ms while
/// something is in motion, every 16 ms while all keep up), so the supervisor needs no locks.
class Supervisor {
public:
    Supervisor(Segment& segment, CommandRouter& router, SupervisorOptions options);
    ~Supervisor();

    /// Starts the processes and waits until the active worker renders (and, in the relay
    /// layout, the output stage plays). On failure `error` says why (for example: no audio
    /// device) and the engine should not start. Thread: main.
    bool start(std::string& error);

    /// Runs until SIGINT/SIGTERM, then fades out, stops every process and returns 0.
    /// Thread: main.
    int run();

    /// Called on SIGHUP, from the supervision loop (without it, SIGHUP stops the engine
    /// like SIGTERM). Thread: main, before run().
    void setReloadHandler(std::function<void()> onReload) { onReload_ = std::move(onReload); }

    /// Tells `notifier` (it outlives the supervisor) the engine's readiness and health and
    /// pings its watchdog from every tick of the supervision loop, and tells it when the
    /// engine stops. Thread: main, before run().
    void setServiceNotifier(ServiceNotifier* notifier) { notifier_ = notifier; }

private:
    enum class Kind : uint32_t { Worker = 0, Output = 1 };

    /// One child process and what sustaind tracks about it.
    struct Child {
        WorkerProcess process;
        // A process killed but not yet gone (stuck in the kernel): the slot's replacement
        // waits for it, since every shared-memory writer of a slot is one process at a time.
        WorkerProcess dying;
        uint64_t dyingSinceNs = 0;
        bool dyingReported = false;     // the error "does not die" was logged
        uint64_t spawnedNs = 0;
        uint64_t lastCallbacks = 0;     // its callback count at the last check
        uint64_t referenceAtProgress = 0;  // the cycle reference when it last advanced
        uint64_t progressNs = 0;        // wall clock when it last advanced
        bool rebuilding = false;        // started as a replacement and not yet warm
        uint64_t clockSeen = 0;         // its callback count as last added to cycleClock_
        bool detached = false;          // relay layout: its ports were taken out of the graph
        uint64_t lastBeats = 0;         // its control thread's beats at the last check
        uint64_t referenceAtBeat = 0;   // the cycle clock when they last advanced
        uint64_t respawnAtNs = 0;       // 0: none scheduled
        bool startTimed = false;        // its start (spawn or go to first callback) is in slowest(Prepared)StartNs_
        WorkerRole respawnRole = WorkerRole::None;
        // Relay layout, an output stage the standby stage took over from: late or failed?
        bool takenOver = false;
        uint64_t callbacksAtTakeover = 0;  // its callback count when the takeover was seen
        uint64_t clockAtTakeover = 0;      // cycleClock_ then
        pid_t audioThread = 0;             // its audio thread (WorkerProcess::audioThread), found then
        uint64_t cpuAtTakeoverNs = 0;      // that thread's CPU time then
        uint64_t wallAtTakeoverNs = 0;     // and the time
        uint32_t generation = 0;           // workers: names its JACK client (workerClientName)
        bool prepared = false;             // it was the prepared worker (started ahead)
        uint64_t mainCpuAtSpawnNs = 0;     // a prepared worker: its main thread's CPU time at its go
    };

    Child& child(Kind kind, uint32_t slot) { return kind == Kind::Worker ? workers_[slot] : outputs_[slot]; }
    const Child& child(Kind kind, uint32_t slot) const { return kind == Kind::Worker ? workers_[slot] : outputs_[slot]; }
    WorkerSlot& slotInfo(Kind kind, uint32_t slot) {
        return kind == Kind::Worker ? segment_.slots[slot] : segment_.outputs[slot];
    }
    const WorkerSlot& slotInfo(Kind kind, uint32_t slot) const {
        return kind == Kind::Worker ? segment_.slots[slot] : segment_.outputs[slot];
    }
    std::string name(Kind kind, uint32_t slot) const;
    std::string jackClientName(Kind kind, uint32_t slot) const;

    /// `args` (a child's slot, generation, mode) followed by what every child is told:
    /// the instance, its wake socket (fd 3), sustaind's pid and the log level.
    std::vector<std::string> childArgs(std::vector<std::string> args) const;
    bool spawn(Kind kind, uint32_t slot, WorkerRole role, std::string& error);
    /// Starts the process for a worker slot: the prepared worker if one waits (it is told
    /// the slot), or a new one. Errors as spawn.
    bool startWorkerProcess(uint32_t slot, std::string& error);
    /// A worker started ahead of need (docs/failover.md): started once every worker slot
    /// has its process warm, so that the next replacement only opens its stream.
    void keepPrepared(uint64_t nowNs);
    bool preparable() const;
    /// The prepared worker died (or is dropped): reaped, counted, prepared again later.
    void losePrepared(const std::string& why, uint64_t nowNs);
    /// Kills the prepared worker without counting it lost (shutdown, device gone).
    void dropPrepared();
    void scheduleRespawn(Kind kind, uint32_t slot, WorkerRole role, uint64_t notBeforeNs);
    uint64_t crashDelayNs(uint64_t nowNs);
    /// Takes back the crashes counted in the second before a device loss was seen (they were its symptoms).
    void forgiveFaultsBeforeDeviceLoss(uint64_t nowNs);
    void onFault(Kind kind, uint32_t slot, const std::string& why, uint64_t noticedNs);
    void promoteStandby(uint32_t failedSlot, uint64_t noticedNs);
    void tick();
    /// The supervision loop's tick: kTickNs or, while steady(), kSteadyTickNs.
    void setTickPeriod(long ns);
    bool steady(uint64_t nowNs) const;
    /// Whether a running process has not advanced for more than kBehindCycles (as of its last check).
    bool behind(Kind kind, uint32_t slot) const;
    /// Reaps the killed processes the kernel has let go; says which ones it does not.
    void reapDying(uint64_t nowNs);
    void checkHang(Kind kind, uint32_t slot, uint64_t nowNs);
    /// Relay layout: makes a standby output stage's takeover official, and tells an output
    /// stage that was only late (it runs again: it stays, as the standby) from one that failed.
    void checkOutputTakeover(uint64_t nowNs);
    void noteTakeover(Child& c, uint64_t callbacks, uint64_t nowNs);
    bool takenOverProcessHung(Child& c, uint64_t nowNs);
    /// Whether the CPU `c`'s audio thread waits on is not being run by the machine at all
    /// (cpu_progress.h): the cycles it misses meanwhile are the machine's, not a hang.
    bool waitsOnUnrunCpu(Child& c, uint64_t nowNs);
    void advanceCycleClock();
    void updateHealth();
    bool waitForState(Kind kind, uint32_t slot, WorkerState wanted, double seconds, std::string& error);
    void shutdown();
    void watch(int fd, uint64_t tag);
    void unwatch(int fd);
    void forget(Kind kind, uint32_t slot);

    Segment& segment_;
    CommandRouter& router_;
    SupervisorOptions options_;
    JackGraph graph_;
    Child workers_[kWorkerSlots];
    Child outputs_[kOutputSlots];
    WorkerProcess prepared_;         // a worker started ahead, waiting for a slot (none: not running)
    uint32_t preparedGeneration_ = 0;
    uint64_t prepareAtNs_ = 0;       // no prepared worker is started before this time
    uint64_t preparedCheckedNs_ = 0; // when its state (stopped?) was last read
    uint32_t preparedFailures_ = 0;  // prepared workers lost in a row (backs off their restarts)
    uint32_t nextGeneration_ = 0;    // the next worker process's generation
    int epoll_ = -1;
    int signalFd_ = -1;
    int timerFd_ = -1;
    long tickNs_ = 0;  // the timer's period now
    std::deque<uint64_t> recentCrashesNs_;
    uint64_t lastLoggedWriter_ = 0;
    // Cycles of the audio clock as seen by sustaind: advanced by the fastest running
    // process, so a hung process does not stop it and a replaced one does not reset it.
    uint64_t cycleClock_ = 0;
    CpuProgress cpus_;           // read only while some process is behind (waitsOnUnrunCpu)
    bool cpusSampled_ = false;   // cpus_ was read in this tick
    uint64_t slowestStartNs_ = 0;  // the longest any process took from spawn to its first callback
    uint64_t slowestPreparedStartNs_ = 0;  // the longest a prepared worker took from its go to its first callback
    /// How long a process may take from spawn to its first callback before it counts as hung.
    uint64_t startupLimitNs() const;
    /// The same for `c`: a prepared worker, given its slot, only opens its stream.
    uint64_t startupLimitNs(const Child& c) const;
    /// Whether `c`'s main thread used at least a quarter of the `startedNs` since its spawn
    /// (a prepared worker: its go) as CPU.
    bool spinsAsItStarts(const Child& c, uint64_t startedNs) const;
    // JACK reorders its graph when a client comes or goes, and may skip clients for a few
    // cycles meanwhile: no hang verdicts until this time.
    uint64_t graceUntilNs_ = 0;
    // Since when the audio device is gone (0: it is there). While it is gone, processes
    // that exit for want of it are not crashes: each is started again every second, no
    // backoff, until one renders; then the wait is logged with its length.
    uint64_t deviceGoneSinceNs_ = 0;
    ServiceNotifier* notifier_ = nullptr;  // systemd / s6 readiness, watchdog, status (optional)
    std::function<void()> onReload_;       // SIGHUP (optional)
};

}  // namespace sustain
