// Marks the dynamic extent of the audio callback for the real-time guard.
//
// The guard (tests/rt_guard/, loaded with LD_PRELOAD in tests only) interposes malloc,
// free, locks, sleeps and I/O system calls and counts every call made between enter and
// leave on the same thread. In production the hooks are not defined: the weak references
// resolve to null and each mark costs one predictable branch.
#pragma once

extern "C" {
void sustain_rt_guard_enter() __attribute__((weak));
void sustain_rt_guard_leave() __attribute__((weak));
}

namespace sustain {

/// Scope guard around real-time code.  Thread: the audio thread.  RT-safe: yes.
class RtGuardScope {
public:
    RtGuardScope() noexcept {
        if (sustain_rt_guard_enter != nullptr) sustain_rt_guard_enter();
    }
    ~RtGuardScope() {
        if (sustain_rt_guard_leave != nullptr) sustain_rt_guard_leave();
    }
    RtGuardScope(const RtGuardScope&) = delete;
    RtGuardScope& operator=(const RtGuardScope&) = delete;
};

}  // namespace sustain
