// Scheduling for the non-audio threads on the command path.
#pragma once

#include <pthread.h>
#include <sched.h>
#include <spdlog/spdlog.h>

#include <cstring>

namespace sustain {

/// Puts the calling thread at SCHED_FIFO priority 1: above every normal thread (so a wake
/// byte is acted on in tens of microseconds, not whenever the scheduler gets to it), below
/// every audio thread (JACK's and PortAudio's run at higher real-time priorities, so this
/// thread can never delay a callback). Without permission it stays where it is and says so.
/// Thread: the thread itself.  RT-safe: no.
inline void requestLowRealtimePriority(const char* what) {
    sched_param param{};
    param.sched_priority = 1;
    if (const int error = pthread_setschedparam(pthread_self(), SCHED_FIFO, &param); error != 0)
        spdlog::info("{}: no real-time priority ({}); commands may wait for the scheduler under load", what,
                     std::strerror(error));
}

}  // namespace sustain
