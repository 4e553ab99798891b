// A fault injector for chaos tests, loaded into a real worker with LD_PRELOAD. It defines
// the real-time hooks of engine/rt/rt_guard_hooks.h (so it knows when the audio thread is
// inside its callback) and turns signals from the test into faults at precise places:
//
//   SIGUSR1   the next callback dereferences a null pointer: SIGSEGV inside the callback
//   SIGUSR2   the control thread calls abort() at its next poll() or ppoll()
//   SIGWINCH  the next callback never returns (an endless loop inside the callback)
//   SIGURG    the control thread never returns from its next poll() or ppoll() (a deadlock there)
//
// Test code only: never built into sustain's binaries.
#include <dlfcn.h>
#include <poll.h>
#include <signal.h>

#include <atomic>
#include <cstdlib>

namespace {

std::atomic<int> segvInCallback{0};
std::atomic<int> hangInCallback{0};
std::atomic<int> abortInControl{0};
std::atomic<int> hangInControl{0};
thread_local int insideCallback = 0;

void onSignal(int signal) {
    switch (signal) {
        case SIGUSR1: segvInCallback.store(1); break;
        case SIGUSR2: abortInControl.store(1); break;
        case SIGWINCH: hangInCallback.store(1); break;
        case SIGURG: hangInControl.store(1); break;
        default: break;
    }
}

__attribute__((constructor)) void installHandlers() {
    struct sigaction action {};
    action.sa_handler = onSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    for (int signal : {SIGUSR1, SIGUSR2, SIGWINCH, SIGURG}) sigaction(signal, &action, nullptr);
}

using PollFunction = int (*)(pollfd*, nfds_t, int);
using PpollFunction = int (*)(pollfd*, nfds_t, const timespec*, const sigset_t*);

/// The control thread's faults, at the wait of its loop (outside any callback).
void controlThreadFault() {
    if (insideCallback != 0) return;
    if (abortInControl.load(std::memory_order_relaxed) != 0) std::abort();
    if (hangInControl.load(std::memory_order_relaxed) != 0) {
        static const auto real = reinterpret_cast<PollFunction>(dlsym(RTLD_NEXT, "poll"));
        for (;;) real(nullptr, 0, 1000);  // a deadlocked control thread
    }
}

}  // namespace

extern "C" {

// Exempt from the sanitizers: the null write is the fault being injected, and the chaos
// tests must see the worker die of SIGSEGV as it would in a plain build, not of a
// sanitizer's report about it.
__attribute__((visibility("default"), no_sanitize("undefined", "address"))) void sustain_rt_guard_enter() {
    ++insideCallback;
    if (segvInCallback.load(std::memory_order_relaxed) != 0) {
        volatile int* nothing = nullptr;
        // cppcheck-suppress nullPointer ; the injected fault
        *nothing = 1;  // NOLINT(clang-analyzer-core.NullDereference): the injected fault  // SIGSEGV, inside the audio callback
    }
    if (hangInCallback.load(std::memory_order_relaxed) != 0) {
        for (;;) std::atomic_signal_fence(std::memory_order_seq_cst);  // never returns
    }
}

__attribute__((visibility("default"))) void sustain_rt_guard_leave() { --insideCallback; }

__attribute__((visibility("default"))) int poll(pollfd* fds, nfds_t count, int timeout) {
    static const auto real = reinterpret_cast<PollFunction>(dlsym(RTLD_NEXT, "poll"));
    controlThreadFault();
    return real(fds, count, timeout);
}

__attribute__((visibility("default"))) int ppoll(pollfd* fds, nfds_t count, const timespec* timeout,
                                                 const sigset_t* mask) {
    static const auto real = reinterpret_cast<PpollFunction>(dlsym(RTLD_NEXT, "ppoll"));
    controlThreadFault();
    return real(fds, count, timeout, mask);
}

}  // extern "C"
