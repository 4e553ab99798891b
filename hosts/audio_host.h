// sustaind --role audio: the audio host of several machines (docs/hosts.md). Runs the host
// output stage (sustain-host-output) and the link to the render hosts; the OSC thread
// (osc/) runs as on one machine and hands this its commands through worker slot 0's ring.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hosts/link_connection.h"
#include "hosts/tagged_render.h"
#include "osc/allow_list.h"
#include "osc/command_router.h"
#include "shm/layout.h"
#include "supervisor/service_notify.h"
#include "supervisor/worker_process.h"

namespace sustain {

struct AudioHostOptions {
    std::string instance = "default";
    std::string bindAddress = "127.0.0.1";  // --bind: the link listens where OSC does
    uint16_t hostPort = 9100;               // --host-port
    AllowList allow;                        // --allow: who may connect as a render host
    uint32_t playoutPeriods = 5;            // --host-latency: blocks are asked for this many cycles ahead
    double masterGain = 0.0;
    std::string logLevel = "info";
    HelperBinary hostOutput;
};

/// Cycles between the block a new command is numbered for and the block the render hosts
/// are asked for when it is numbered: time for the command to cross the link before any
/// host renders that block. A command that arrives later makes that host re-sync.
inline constexpr uint64_t kCommandMarginCycles = 2;

class AudioHost {
public:
    AudioHost(Segment& segment, CommandRouter& router, AudioHostOptions options);
    ~AudioHost();
    AudioHost(const AudioHost&) = delete;
    AudioHost& operator=(const AudioHost&) = delete;

    /// Listens for render hosts, starts the host output stage and waits for its first cycle.
    /// Thread: main.  Errors: false with `error` saying why, with the fix.
    bool start(std::string& error);

    /// The supervision loop, until SIGINT/SIGTERM; returns the exit code. Thread: main.
    int run();

    /// Readiness (ready once two render hosts are in step), status text and watchdog go
    /// here, as on one machine (supervisor/service_notify.h). Thread: main, before run().
    void setServiceNotifier(ServiceNotifier* notifier) { notifier_ = notifier; }

private:
    struct Link {
        LinkConnection connection;
        std::string address;
        int row = -1;           // -1: not welcomed yet
        uint64_t acceptedNs = 0;
    };

    bool spawnStage(std::string& error);
    void acceptLinks();
    void serviceLink(Link& link);
    void handleHello(Link& link, const uint8_t* payload, uint32_t length);
    void sendSnapshot(Link& link);
    void drainCommands();
    uint64_t earliestTag() const;
    void advanceReference();
    void judgeHosts(uint64_t nowNs);
    void closeLink(Link& link, const std::string& why);
    void superviseStage(uint64_t nowNs);

    Segment& segment_;
    CommandRouter& router_;
    AudioHostOptions options_;
    int listenFd_ = -1;
    int signalFd_ = -1;
    int wakeRead_ = -1;   // the router's wake bytes for ring 0 arrive here
    int wakeWrite_ = -1;
    ServiceNotifier* notifier_ = nullptr;
    WorkerProcess stage_;
    uint64_t stageRestartNs_ = 0;  // when to start the stage again (0: it runs)
    std::vector<Link> links_;
    TaggedRenderer reference_;   // the state every render host starts from (renders nothing heard)
    bool referenceStarted_ = false;
    uint64_t blocksAtJoin_[kRenderHostSlots] = {};  // each row's RenderHostSlot::blocks when its link was welcomed
    float scratch_[kMaxRelayFrames] = {};
};

}  // namespace sustain
