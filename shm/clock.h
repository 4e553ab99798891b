// Clock helpers shared by every process.
#pragma once

#include <cstdint>
#include <ctime>

namespace sustain {

/// CLOCK_MONOTONIC in nanoseconds.
/// Thread: any.  RT-safe: yes (served by the vDSO, no system call on Linux/x86-64 and arm64).
inline uint64_t monotonicNs() noexcept {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

/// CLOCK_REALTIME in nanoseconds (for humans and OSC timetags, never for intervals).
/// Thread: any.  RT-safe: yes (vDSO).
inline uint64_t realtimeNs() noexcept {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace sustain
