// sustaind's supervision: the worker's life cycle and the engine's shutdown.
#pragma once

#include <cstdint>
#include <deque>
#include <string>

#include "osc/command_router.h"
#include "shm/layout.h"
#include "supervisor/worker_process.h"

namespace sustain {

struct SupervisorOptions {
    std::string instance;
    std::string workerPath;
    std::string logLevel = "info";
    uint32_t restartLimit = 5;        // more crashes than this ...
    double restartWindowS = 10.0;     // ... within this many seconds is a crash loop
    double stallTimeoutS = 1.0;       // an active worker whose callback has not run this long is hung
    double shutdownTimeoutS = 2.0;    // time a worker gets to fade out and exit
};

/// Runs the worker in slot 0 and keeps it running. Everything happens on sustaind's main
/// thread in one epoll loop (signalfd, pidfd, sentinel socket, timerfd), so there is no
/// locking in the supervisor at all.
class Supervisor {
public:
    Supervisor(Segment& segment, CommandRouter& router, SupervisorOptions options);
    ~Supervisor();

    /// Starts the first worker and waits until it renders. On failure `error` says why
    /// (for example: no audio device) and the engine should not start.
    /// Thread: main.
    bool startFirstWorker(std::string& error);

    /// Runs until SIGINT/SIGTERM, then fades out, stops the worker and returns 0.
    /// Thread: main.
    int run();

private:
    bool spawnWorker(uint32_t slot, std::string& error);
    void onWorkerGone(uint32_t slot);
    void checkHeartbeats();
    void restartDue();
    void shutdown();
    void watch(int fd, uint64_t tag);
    void unwatch(int fd);

    Segment& segment_;
    CommandRouter& router_;
    SupervisorOptions options_;
    WorkerProcess workers_[kWorkerSlots];
    int epoll_ = -1;
    int signalFd_ = -1;
    int timerFd_ = -1;
    std::deque<uint64_t> recentCrashesNs_;
    uint64_t restartAtNs_ = 0;          // 0: no restart scheduled
    uint64_t lastCallbacks_ = 0;
    uint64_t lastProgressNs_ = 0;
};

}  // namespace sustain
