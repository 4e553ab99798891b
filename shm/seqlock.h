// A seqlock over a trivially copyable value stored as relaxed atomic words.
//
// One writer at a time (a worker's callback) publishes a value; any number of readers (the
// standby, the OSC thread, the status monitor) copy it without ever blocking the writer.
// The data words are atomics, so a torn read is detected (sequence changed or odd) rather
// than being undefined behaviour.
//
// The writer may die anywhere, between the two sequence stores included: the sequence is
// then left odd, and every read fails (no torn value is ever taken) until the next writer
// (the replacement process of that slot) writes. That writer does not trust the parity it
// finds: it always begins at the next odd number and ends at the even one after it, so the
// parity is right again from its first write on, and a reader that started under the dead
// writer sees the sequence change.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>

#include "shm/fault_point.h"

namespace sustain {

/// The odd sequence number a write begins at, whatever the writer before left behind:
/// even (it finished) or odd (it died mid-write). Thread: the writer.  RT-safe: yes.
constexpr uint64_t seqlockBegin(uint64_t found) noexcept { return (found + 1) | 1; }

/// Publishes `value` into `words` under `sequence`. `where` names the fault point half-way
/// through the write (sequence odd, half the words new), for chaos tests.
/// Thread: the single writer.  RT-safe: yes (a bounded copy).
template <typename T, size_t Words>
inline void seqlockWrite(std::atomic<uint64_t>& sequence, std::atomic<uint64_t> (&words)[Words],
                         const T& value, [[maybe_unused]] FaultPoint where = FaultPoint::None) noexcept {
    static_assert(sizeof(T) <= Words * 8);
    uint64_t buffer[Words] = {};
    std::memcpy(buffer, &value, sizeof(T));
    const uint64_t begin = seqlockBegin(sequence.load(std::memory_order_relaxed));
    sequence.store(begin, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    for (size_t i = 0; i < Words; ++i) {
        if (i == Words / 2) SUSTAIN_FAULT_POINT(where);
        words[i].store(buffer[i], std::memory_order_relaxed);
    }
    sequence.store(begin + 1, std::memory_order_release);
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
