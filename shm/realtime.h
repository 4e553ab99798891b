// Scheduling for the non-audio threads on the command path.
#pragma once

#include <pthread.h>
#include <sched.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>

namespace sustain {

/// SCHED_FIFO priorities below the audio threads (JACK's and PortAudio's run higher, so
/// none of these can delay a callback), above every normal thread.
inline constexpr int kControlThreadPriority = 1;  // workers' control threads: wake bytes acted on at once
/// sustaind's supervision loop: a watchdog must outrank what it judges hung, or a child's
/// control thread spinning at its priority can keep it off the CPU for seconds.
inline constexpr int kSupervisorPriority = 2;

/// Puts the calling thread at SCHED_FIFO `priority`; with SCHED_RESET_ON_FORK, so that the
/// processes it starts begin as normal ones and choose their own. Without permission it
/// stays where it is and says so. Thread: the thread itself.  RT-safe: no.
inline void requestRealtimePriority(int priority, const char* what) {
    sched_param param{};
    param.sched_priority = priority;
    if (sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &param) != 0)
        spdlog::warn("{}: no real-time priority ({}); it may wait for the scheduler under load. Allow it: "
                     "LimitRTPRIO=95 in a systemd unit, or an rtprio limit for the user (the audio group, "
                     "/etc/security/limits.d/audio.conf; docs/install.md)",
                     what, std::strerror(errno));
}

/// A worker's control thread: see kControlThreadPriority.
inline void requestLowRealtimePriority(const char* what) { requestRealtimePriority(kControlThreadPriority, what); }

}  // namespace sustain
