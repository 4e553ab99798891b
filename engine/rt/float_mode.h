// The audio thread's floating-point mode: denormal numbers flushed to zero.
#pragma once

#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace sustain {

#if defined(__x86_64__) || defined(__i386__)
inline constexpr unsigned kFlushToZeroBits = 0x8040;  // MXCSR: FTZ (bit 15) and DAZ (bit 6)
#elif defined(__aarch64__)
inline constexpr uint64_t kFlushToZeroBits = uint64_t{1} << 24;  // FPCR.FZ
#endif

/// Sets flush-to-zero (results) and denormals-are-zero (inputs) on the calling thread.
/// A denormal costs up to a hundred times a normal operation on x86, and a decaying ramp
/// makes them by itself whatever the input (OSC values below kTinyValue are already 0).
/// The mode belongs to the thread, and the audio thread is JACK's or PortAudio's, not ours:
/// it is set at every callback's entry, a register read and, once, a write.
/// Thread: the audio thread.  RT-safe: yes.
inline void flushDenormals() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    const unsigned mode = _mm_getcsr();
    if ((mode & kFlushToZeroBits) != kFlushToZeroBits) _mm_setcsr(mode | kFlushToZeroBits);
#elif defined(__aarch64__)
    uint64_t mode = 0;
    asm volatile("mrs %0, fpcr" : "=r"(mode));
    if ((mode & kFlushToZeroBits) == 0) asm volatile("msr fpcr, %0" : : "r"(mode | kFlushToZeroBits));
#endif
}

/// Whether flushDenormals() is in force on the calling thread (false where the
/// architecture has no such mode). Thread: any.  RT-safe: yes.
inline bool denormalsFlushed() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    return (_mm_getcsr() & kFlushToZeroBits) == kFlushToZeroBits;
#elif defined(__aarch64__)
    uint64_t mode = 0;
    asm volatile("mrs %0, fpcr" : "=r"(mode));
    return (mode & kFlushToZeroBits) != 0;
#else
    return false;
#endif
}

}  // namespace sustain
