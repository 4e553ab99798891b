// A bounded single-producer single-consumer ring that works across processes.
//
// The ring type owns no memory: its indices (RingIndices) and its storage live in the
// shared segment (or anywhere else, for tests), so two processes that map the same
// memory at different addresses each build their own SpscRing view over it.
//
// Protocol: the producer writes a slot, then publishes writeIndex with release; the
// consumer reads writeIndex with acquire, copies the slot, then publishes readIndex with
// release. Indices count forever (64 bits do not wrap in practice); slot = index & mask.
// Policy when full: tryPush() refuses and counts (RingIndices::rejectedFull); the caller
// decides what to do (the OSC thread coalesces into a later refresh, see osc/).
#pragma once

#include <atomic>
#include <cstdint>
#include <type_traits>

#include "shm/fault_point.h"
#include "shm/layout.h"

namespace sustain {

template <typename T>
class SpscRing {
    static_assert(std::is_trivially_copyable_v<T>, "ring records are copied as bytes");

public:
    /// Builds a view; `indices.capacity` must already be set (see initialize()).
    SpscRing(RingIndices& indices, T* slots) noexcept
        : indices_(indices), slots_(slots), mask_(indices.capacity - 1) {}

    /// Resets indices and counters for a ring of `capacity` slots (a power of two).
    /// Thread: the owner, before any producer or consumer uses the ring.  RT-safe: yes.
    static void initialize(RingIndices& indices, uint32_t capacity) noexcept {
        indices.capacity = capacity;
        indices.writeIndex.store(0, std::memory_order_relaxed);
        indices.readIndex.store(0, std::memory_order_relaxed);
        indices.consumerSleeping.store(0, std::memory_order_relaxed);
        indices.rejectedFull.store(0, std::memory_order_relaxed);
        indices.wakesSent.store(0, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_release);
    }

    /// Appends a record; false (and counted) when the ring is full. Never blocks or allocates.
    /// Thread: the producer.  RT-safe: yes.
    bool tryPush(const T& record) noexcept {
        const uint64_t write = indices_.writeIndex.load(std::memory_order_relaxed);
        const uint64_t read = indices_.readIndex.load(std::memory_order_acquire);
        if (write - read > mask_) {
            indices_.rejectedFull.fetch_add(1, std::memory_order_relaxed);
            return false;
        }
        slots_[write & mask_] = record;
        SUSTAIN_FAULT_POINT(FaultPoint::RingPush);
        indices_.writeIndex.store(write + 1, std::memory_order_release);
        return true;
    }

    /// Takes the oldest record, if any; false when the ring is empty.
    /// Thread: the consumer.  RT-safe: yes.
    bool tryPop(T& out) noexcept {
        const uint64_t read = indices_.readIndex.load(std::memory_order_relaxed);
        const uint64_t write = indices_.writeIndex.load(std::memory_order_acquire);
        if (read == write) return false;
        out = slots_[read & mask_];
        indices_.readIndex.store(read + 1, std::memory_order_release);
        return true;
    }

    /// Records waiting; stale as soon as it is read.  Thread: any.  RT-safe: yes.
    uint64_t sizeApprox() const noexcept {
        const uint64_t read = indices_.readIndex.load(std::memory_order_acquire);
        const uint64_t write = indices_.writeIndex.load(std::memory_order_acquire);
        return write - read;
    }

    uint32_t capacity() const noexcept { return mask_ + 1; }

    // ---- Sleep/wake handshake (Dekker style, both sides sequentially consistent) ----
    // The consumer announces it is about to sleep, then looks once more; the producer
    // publishes, then looks whether the consumer sleeps. At least one of them sees the
    // other, so a record is never left behind a sleeping consumer, and a busy consumer
    // costs the producer no system call.

    /// Says the consumer is going to sleep; returns false if records arrived meanwhile
    /// (then it must not sleep). Thread: the consumer.  RT-safe: yes.
    bool prepareToSleep() noexcept {
        indices_.consumerSleeping.store(1, std::memory_order_seq_cst);
        if (sizeApproxSeqCst() != 0) {
            indices_.consumerSleeping.store(0, std::memory_order_relaxed);
            return false;
        }
        return true;
    }

    /// The consumer woke up (for whatever reason). Thread: the consumer.  RT-safe: yes.
    void wokeUp() noexcept { indices_.consumerSleeping.store(0, std::memory_order_relaxed); }

    /// After one or more tryPush(): true if the consumer sleeps and must be woken by the
    /// caller (one byte on its socketpair). Clears the flag so only one wake is sent.
    /// Thread: the producer.  RT-safe: yes.
    bool consumerNeedsWake() noexcept {
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (indices_.consumerSleeping.load(std::memory_order_relaxed) == 0) return false;
        if (indices_.consumerSleeping.exchange(0, std::memory_order_acq_rel) == 0) return false;
        indices_.wakesSent.fetch_add(1, std::memory_order_relaxed);
        return true;
    }

    uint64_t rejectedFull() const noexcept { return indices_.rejectedFull.load(std::memory_order_relaxed); }

private:
    uint64_t sizeApproxSeqCst() const noexcept {
        const uint64_t write = indices_.writeIndex.load(std::memory_order_seq_cst);
        const uint64_t read = indices_.readIndex.load(std::memory_order_relaxed);
        return write - read;
    }

    RingIndices& indices_;
    T* slots_;
    uint64_t mask_;
};

/// The command ring of worker slot `slot` in a mapped segment.
inline SpscRing<Command> commandRing(Segment& segment, uint32_t slot) noexcept {
    return SpscRing<Command>(segment.rings[slot].indices, segment.rings[slot].slots);
}

}  // namespace sustain
