// A seqlock over a trivially copyable value stored as relaxed atomic words.
//
// One writer (a worker's callback) publishes a RenderState at the end of each block; any
// number of readers (the standby, the status monitor) copy it without ever blocking the
// writer. The data words are atomics, so a torn read is detected (sequence changed or odd)
// rather than being undefined behaviour.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>

namespace sustain {

/// Publishes `value` into `words` under `sequence`.
/// Thread: the single writer.  RT-safe: yes (a bounded copy).
template <typename T, size_t Words>
inline void seqlockWrite(std::atomic<uint64_t>& sequence, std::atomic<uint64_t> (&words)[Words],
                         const T& value) noexcept {
    static_assert(sizeof(T) <= Words * 8);
    uint64_t buffer[Words] = {};
    std::memcpy(buffer, &value, sizeof(T));
    const uint64_t s = sequence.load(std::memory_order_relaxed);
    sequence.store(s + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    for (size_t i = 0; i < Words; ++i) words[i].store(buffer[i], std::memory_order_relaxed);
    sequence.store(s + 2, std::memory_order_release);
}

/// Copies a consistent value; false if the writer kept interfering for `maxAttempts` tries.
/// Thread: any reader.  RT-safe: yes (bounded attempts).
template <typename T, size_t Words>
inline bool seqlockRead(const std::atomic<uint64_t>& sequence, const std::atomic<uint64_t> (&words)[Words],
                        T& out, int maxAttempts = 64) noexcept {
    static_assert(sizeof(T) <= Words * 8);
    for (int attempt = 0; attempt < maxAttempts; ++attempt) {
        const uint64_t before = sequence.load(std::memory_order_acquire);
        if (before & 1) continue;
        uint64_t buffer[Words];
        for (size_t i = 0; i < Words; ++i) buffer[i] = words[i].load(std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_acquire);
        if (sequence.load(std::memory_order_relaxed) != before) continue;
        std::memcpy(&out, buffer, sizeof(T));
        return true;
    }
    return false;
}

}  // namespace sustain
