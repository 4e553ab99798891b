#include "shm/fault_point.h"

#include <signal.h>

namespace sustain {

int armFaultSignal() { return SIGRTMIN + 5; }

#if defined(SUSTAIN_FAULT_POINTS)

std::atomic<uint32_t> gArmedFault{0};

namespace {

void onArmSignal(int /*signal*/, siginfo_t* info, void* /*context*/) {
    const auto value = static_cast<uint32_t>(info->si_value.sival_int);
    const uint32_t point = value >> 8;
    const uint32_t kind = value & 0xff;
    if (point == 0) {
        gArmedFault.store(0, std::memory_order_relaxed);  // disarm (a point that was never passed)
        return;
    }
    if (point >= static_cast<uint32_t>(FaultPoint::Count) || kind >= static_cast<uint32_t>(FaultKind::Count))
        return;  // not a fault this build knows: ignored
    gArmedFault.store(value, std::memory_order_relaxed);
}

}  // namespace

// Exempt from the sanitizers: the null write is the fault being injected, and the chaos
// runs must see the process die of SIGSEGV as it would in a plain build.
__attribute__((no_sanitize("undefined", "address", "thread"))) void carryOutFault(uint32_t armed) noexcept {
    // One thread carries it out; a Stop is disarmed so that the process runs on normally
    // once continued.
    if (!gArmedFault.compare_exchange_strong(armed, 0, std::memory_order_relaxed)) return;
    switch (static_cast<FaultKind>(armed & 0xff)) {
        case FaultKind::Kill: raise(SIGKILL); break;
        case FaultKind::Stop: raise(SIGSTOP); break;
        case FaultKind::Segv: {
            volatile int* nothing = nullptr;
            // cppcheck-suppress nullPointer ; the injected fault
            *nothing = 1;  // NOLINT(clang-analyzer-core.NullDereference): the injected fault
            break;
        }
        case FaultKind::Loop:
            for (;;) std::atomic_signal_fence(std::memory_order_seq_cst);  // never returns
        case FaultKind::Count: break;
    }
}

void installFaultPoints() {
    struct sigaction action {};
    action.sa_sigaction = onArmSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(armFaultSignal(), &action, nullptr);
    sigset_t arm;
    sigemptyset(&arm);
    sigaddset(&arm, armFaultSignal());
    pthread_sigmask(SIG_UNBLOCK, &arm, nullptr);
}

#endif

}  // namespace sustain
