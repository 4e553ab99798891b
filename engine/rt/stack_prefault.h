// The audio thread's stack, made resident before the first block.
#pragma once

#include <cstddef>

namespace sustain {

/// How much of its stack the audio thread may use below the callback's entry: the engine's
/// own frames need a few kilobytes; the rest is margin.
inline constexpr size_t kCallbackStackBytes = size_t{64} * 1024;

/// Touches kCallbackStackBytes of the calling thread's stack, a byte per page. Memory mapped
/// after the process locked its memory (the stacks JACK gives its threads among it) is
/// locked page by page as it is first touched, not filled in whole (lockMemory in
/// engine/process_setup.cpp); touched here once, in the first callback, no later callback
/// can fault on a stack page it reaches for the first time. Thread: the audio thread.
/// RT-safe: yes (page faults on its first call only, which renders nothing yet that plays).
[[gnu::noinline]] inline void touchCallbackStack() noexcept {
    [[maybe_unused]] volatile char pages[kCallbackStackBytes];
    for (size_t i = 0; i < kCallbackStackBytes; i += 4096) pages[i] = 0;
}

/// touchCallbackStack() on the first call for this `touched` flag (a callback context's).
/// Thread: the audio thread.  RT-safe: yes.
inline void touchCallbackStackOnce(bool& touched) noexcept {
    if (touched) return;
    touchCallbackStack();
    touched = true;
}

}  // namespace sustain
