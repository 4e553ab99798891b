#include "supervisor/service_notify.h"

#include "sustain_features.h"

#if SUSTAIN_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace sustain {

namespace {
std::string crashes(uint64_t count) { return std::to_string(count) + (count == 1 ? " crash" : " crashes"); }
}  // namespace

EngineHealth describeHealth(const SupervisorMetrics& metrics, bool standby, bool relay) {
    const auto reason = static_cast<DegradedReason>(metrics.degradedReason.load(std::memory_order_acquire));
    const uint64_t crashCount = metrics.crashCount.load(std::memory_order_relaxed);
    const bool spare = metrics.spareReady.load(std::memory_order_acquire) != 0;
    const bool outputSpare = metrics.outputSpareReady.load(std::memory_order_acquire) != 0;
    EngineHealth health;
    health.ready = reason == DegradedReason::None && (!standby || (spare && (!relay || outputSpare)));
    // Before anything failed, a missing spare is the first one still starting.
    const bool firstStart = crashCount == 0 && metrics.replacements.load(std::memory_order_relaxed) == 0;
    const auto missing = [&](const std::string& spareName) {
        return firstStart ? "playing, the " + spareName + " is warming up"
                          : "degraded: no " + spareName + " (rebuilding), " + crashes(crashCount);
    };
    switch (reason) {
        case DegradedReason::None:
            health.text = standby ? "playing, spare warm, " + crashes(crashCount)
                                  : "playing without a standby (--no-standby), " + crashes(crashCount);
            break;
        case DegradedReason::NoSpare: health.text = missing("spare"); break;
        case DegradedReason::NoOutputSpare: health.text = missing("spare output stage"); break;
        case DegradedReason::BackingOff:
            health.text = "degraded: no spare (backing off after a crash loop), " + crashes(crashCount);
            break;
        case DegradedReason::ColdStart:
            health.text = "degraded: cold start from the state table, " + crashes(crashCount);
            break;
        case DegradedReason::WaitingForDevice:
            health.text = "waiting for the audio device";
            break;
        case DegradedReason::StuckProcess:
            health.text = "degraded: a killed process does not die (stuck in the kernel), no spare until it does, " +
                          crashes(crashCount);
            break;
    }
    return health;
}

ServiceNotifier::ServiceNotifier(int notifyFd) : notifyFd_(notifyFd) {
    const char* socket = std::getenv("NOTIFY_SOCKET");
    systemd_ = socket != nullptr && socket[0] != '\0';
    uint64_t watchdogUs = 0;
#if SUSTAIN_HAVE_SYSTEMD
    // Unset: the workers must not take the watchdog for theirs (with WATCHDOG_PID unset,
    // sd_watchdog_enabled() says yes to any process that reads it).
    const int enabled = sd_watchdog_enabled(1, &watchdogUs);
#else
    // Built without libsystemd: a service manager's socket is not spoken to.
    if (systemd_)
        spdlog::warn("NOTIFY_SOCKET is set, but this sustaind was built without systemd notification "
                     "(meson -Dsystemd=disabled): use Type=simple, or --notify-fd with s6");
    systemd_ = false;
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    const int enabled = 0;
#endif
    if (enabled > 0) {
        watchdogUs_ = watchdogUs;
        if (!systemd_)
            spdlog::warn("WATCHDOG_USEC is set but NOTIFY_SOCKET is not: no watchdog pings can be sent");
        else
            spdlog::info("service watchdog: {:.1f} s, pinged every {:.1f} s from the supervision loop",
                         watchdogUs / 1e6, watchdogUs / 2e6);
    } else if (enabled < 0) {
        spdlog::warn("WATCHDOG_USEC or WATCHDOG_PID is malformed ({}): no watchdog pings", std::strerror(-enabled));
    }
}

ServiceNotifier::~ServiceNotifier() {
    if (notifyFd_ >= 0) close(notifyFd_);
}

bool ServiceNotifier::checkNotifyFd(int fd, std::string& error) {
    if (fd >= 0 && fd <= 2) {
        error = "--notify-fd " + std::to_string(fd) +
                ": 0, 1 and 2 are standard input, output and error; expected the number of the pipe the service "
                "manager opened for readiness (e.g. s6's notification-fd, 3 or higher)";
        return false;
    }
    const int flags = fd < 0 ? -1 : fcntl(fd, F_GETFD);
    if (flags < 0) {
        error = "--notify-fd " + std::to_string(fd) +
                ": not an open file descriptor; expected one the service manager opened for readiness (e.g. s6's "
                "notification-fd), or leave the flag out";
        return false;
    }
    const int status = fcntl(fd, F_GETFL);
    if ((status & O_ACCMODE) == O_RDONLY) {
        error = "--notify-fd " + std::to_string(fd) + ": open for reading only; the readiness newline is written to it";
        return false;
    }
    fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    return true;
}

void ServiceNotifier::send([[maybe_unused]] const std::string& message) {
    if (!systemd_) return;
#if SUSTAIN_HAVE_SYSTEMD
    const int result = sd_notify(0, message.c_str());
    if (result < 0) spdlog::debug("sd_notify(\"{}\") failed: {}", message, std::strerror(-result));
#endif
}

void ServiceNotifier::status(std::string_view text) {
    if (!active() || text == lastStatus_) return;
    lastStatus_ = text;
    send("STATUS=" + lastStatus_);
}

void ServiceNotifier::report(const SupervisorMetrics& metrics, bool standby, bool relay) {
    if (!active()) return;
    // Everything describeHealth() reads, packed: a tick (every 2 ms at most) needs no new string.
    const uint64_t fingerprint = metrics.degradedReason.load(std::memory_order_acquire) |
                                 metrics.spareReady.load(std::memory_order_acquire) << 4 |
                                 metrics.outputSpareReady.load(std::memory_order_acquire) << 5 |
                                 uint64_t{metrics.replacements.load(std::memory_order_relaxed) != 0} << 6 |
                                 metrics.crashCount.load(std::memory_order_relaxed) << 7;
    if (fingerprint == lastFingerprint_) return;
    lastFingerprint_ = fingerprint;
    const EngineHealth health = describeHealth(metrics, standby, relay);
    if (health.ready && !readySent_) {
        readySent_ = true;
        // One datagram: systemd sees the first status line together with the readiness.
        lastStatus_ = health.text;
        send("READY=1\nSTATUS=" + health.text);
        if (notifyFd_ >= 0) {
            const char newline = '\n';
            if (write(notifyFd_, &newline, 1) != 1)
                spdlog::warn("--notify-fd {}: cannot write the readiness newline: {}", notifyFd_, std::strerror(errno));
            close(notifyFd_);
            notifyFd_ = -1;
        }
        spdlog::info("told the service manager: ready ({})", health.text);
        return;
    }
    status(health.text);
}

void ServiceNotifier::watchdog(uint64_t nowNs) {
    if (watchdogUs_ == 0 || !systemd_) return;
    if (lastPingNs_ != 0 && nowNs - lastPingNs_ < watchdogUs_ * 500) return;  // half the interval, in ns
    lastPingNs_ = nowNs;
    send("WATCHDOG=1");
}

void ServiceNotifier::stopping() {
    if (stoppingSent_) return;
    stoppingSent_ = true;
    send("STOPPING=1\nSTATUS=stopping: fading out");
    lastStatus_ = "stopping: fading out";
}

}  // namespace sustain
