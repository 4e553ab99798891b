// A bounded single-producer single-consumer ring of interleaved float frames, for the
// recorder: the JACK process thread writes whole blocks, a normal thread drains them to disk.
//
// Protocol: the producer fills slots, then publishes writeIndex_ with release; the consumer
// reads writeIndex_ with acquire, copies, then publishes readIndex_ with release. Indices
// count samples forever (64 bits do not wrap in practice); slot = index & mask_.
// Policy when full: the whole block is refused (nothing written) and the caller counts it
// as lost; nothing ever waits. A lost block is a hole the recording must not hide.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace sustain::audio {

class SampleRing {
    static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

public:
    /// Allocates storage for at least `minSamples` samples (rounded up to a power of two) and
    /// touches every page, so the producer never takes a page fault on first use.
    /// Thread: setup, before producer or consumer run.  RT-safe: no (allocates).
    explicit SampleRing(std::size_t minSamples)
        : storage_(std::bit_ceil(minSamples < 2 ? std::size_t{2} : minSamples), 0.0f),
          mask_(storage_.size() - 1) {}

    SampleRing(const SampleRing&) = delete;
    SampleRing& operator=(const SampleRing&) = delete;

    /// Appends `frames` frames, interleaving `channelCount` per-channel buffers; all or
    /// nothing: false (nothing written) when the block does not fit.
    /// Thread: the producer.  RT-safe: yes.
    bool tryWriteInterleaved(const float* const* channels, std::size_t channelCount,
                             std::size_t frames) noexcept {
        const std::uint64_t write = writeIndex_.load(std::memory_order_relaxed);
        const std::uint64_t read = readIndex_.load(std::memory_order_acquire);
        const std::uint64_t samples = static_cast<std::uint64_t>(frames) * channelCount;
        if (storage_.size() - (write - read) < samples) return false;
        std::uint64_t index = write;
        for (std::size_t f = 0; f < frames; ++f) {
            for (std::size_t c = 0; c < channelCount; ++c) {
                storage_[static_cast<std::size_t>(index) & mask_] = channels[c][f];
                ++index;
            }
        }
        writeIndex_.store(index, std::memory_order_release);
        return true;
    }

    /// Moves up to `maxSamples` of the oldest samples into `out`; returns how many.
    /// Thread: the consumer.  RT-safe: yes.
    std::size_t read(float* out, std::size_t maxSamples) noexcept {
        const std::uint64_t read = readIndex_.load(std::memory_order_relaxed);
        const std::uint64_t write = writeIndex_.load(std::memory_order_acquire);
        const std::uint64_t available = write - read;
        const std::size_t count = available < maxSamples ? static_cast<std::size_t>(available) : maxSamples;
        for (std::size_t i = 0; i < count; ++i) out[i] = storage_[static_cast<std::size_t>(read + i) & mask_];
        readIndex_.store(read + count, std::memory_order_release);
        return count;
    }

    /// Samples waiting; stale as soon as it is read.  Thread: any.  RT-safe: yes.
    std::size_t sizeApprox() const noexcept {
        const std::uint64_t read = readIndex_.load(std::memory_order_acquire);
        const std::uint64_t write = writeIndex_.load(std::memory_order_acquire);
        return static_cast<std::size_t>(write - read);
    }

    /// Capacity in samples.  Thread: any.  RT-safe: yes.
    std::size_t capacity() const noexcept { return storage_.size(); }

    /// Start of the storage (to mlock it).  Thread: setup.  RT-safe: yes.
    const float* data() const noexcept { return storage_.data(); }

private:
    std::vector<float> storage_;
    std::size_t mask_;
    alignas(64) std::atomic<std::uint64_t> writeIndex_{0};  // writer: the producer
    alignas(64) std::atomic<std::uint64_t> readIndex_{0};   // writer: the consumer
};

}  // namespace sustain::audio
