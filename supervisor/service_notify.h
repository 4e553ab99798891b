// sustaind under a service manager: readiness, watchdog, status and stopping, told to
// systemd through sd_notify and to s6-style supervisors through a readiness fd.
// Everything here is a no-op when neither is configured (NOTIFY_SOCKET unset, no --notify-fd).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "shm/layout.h"

namespace sustain {

/// What sustaind tells its service manager, in the terms docs/service.md defines.
struct EngineHealth {
    bool ready = false;  // the active renders and, with a standby, the spare (and spare output stage) is warm
    std::string text;    // one line for STATUS= ("playing, spare warm, 0 crashes", ...)
};

/// Judges readiness and words the status line from the supervisor's metrics.
/// `standby`: the engine runs a standby (no --no-standby); `relay`: the relay layout.
/// Thread: any (reads atomics).  RT-safe: no (builds a string).
EngineHealth describeHealth(const SupervisorMetrics& metrics, bool standby, bool relay);

class ServiceNotifier {
public:
    /// Reads NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID (WATCHDOG_PID unset means the
    /// watchdog is for this process; the watchdog variables are then removed from the
    /// environment, so the workers sustaind starts do not inherit them). `notifyFd` is a
    /// readiness fd checked with checkNotifyFd(), or -1.
    /// Thread: main, before any other thread exists (it changes the environment).
    explicit ServiceNotifier(int notifyFd);
    ~ServiceNotifier();
    ServiceNotifier(const ServiceNotifier&) = delete;
    ServiceNotifier& operator=(const ServiceNotifier&) = delete;

    /// Checks a --notify-fd value: an open file descriptor other than 0, 1 and 2. Marks it
    /// close-on-exec, so that no worker holds it open.
    /// Thread: main.  Errors: `error` says what is wrong and what was expected.
    static bool checkNotifyFd(int fd, std::string& error);

    /// Reports the engine's health (describeHealth()): READY=1 (and the newline on the
    /// readiness fd) the first time it is ready, STATUS= whenever the text differs from the
    /// last one sent. The text is only worded again when a figure it is made of changed.
    /// Thread: main (the supervision loop, every tick).  Cost: a few atomic loads otherwise.
    void report(const SupervisorMetrics& metrics, bool standby, bool relay);

    /// Sends STATUS= with `text` unless it is the last one sent. Thread: main.
    void status(std::string_view text);

    /// Sends WATCHDOG=1 when half of the watchdog interval has passed since the last one.
    /// Called from every tick of the supervision loop, so that a hung loop stops the pings.
    /// Thread: main.  Cost: one clock read when nothing is due.
    void watchdog(uint64_t nowNs);

    /// Sends STOPPING=1 (once). Thread: main.
    void stopping();

    /// Whether a service manager listens (NOTIFY_SOCKET set or a readiness fd given).
    bool active() const { return systemd_ || notifyFd_ >= 0; }
    /// The watchdog interval systemd asked for, 0 when none.
    uint64_t watchdogUs() const { return watchdogUs_; }
    bool readySent() const { return readySent_; }

private:
    void send(const std::string& message);

    bool systemd_ = false;
    int notifyFd_ = -1;
    uint64_t watchdogUs_ = 0;
    uint64_t lastPingNs_ = 0;
    bool readySent_ = false;
    bool stoppingSent_ = false;
    std::string lastStatus_;
    uint64_t lastFingerprint_ = ~0ull;  // what the last report was worded from
};

}  // namespace sustain
