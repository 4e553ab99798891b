// Reading the histograms of shm/layout.h: percentiles are computed by the reader.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace sustain {

struct Percentiles {
    uint64_t count = 0;
    double p50 = 0, p95 = 0, p99 = 0, max = 0;  // in the histogram's unit (bin index)
};

/// Percentiles of a histogram of `count` bins (the last one an overflow bin, counted as its
/// index). Thread: any.  RT-safe: no (allocates a copy).
inline Percentiles histogramPercentiles(const std::atomic<uint64_t>* bins, size_t count) {
    Percentiles result;
    std::vector<uint64_t> copy(count);
    for (size_t i = 0; i < count; ++i) {
        copy[i] = bins[i].load(std::memory_order_relaxed);
        result.count += copy[i];
    }
    if (result.count == 0) return result;
    auto at = [&](double fraction) {
        const auto rank = static_cast<uint64_t>(fraction * static_cast<double>(result.count - 1)) + 1;
        uint64_t seen = 0;
        for (size_t i = 0; i < count; ++i) {
            seen += copy[i];
            if (seen >= rank) return static_cast<double>(i);
        }
        return static_cast<double>(count - 1);
    };
    result.p50 = at(0.50);
    result.p95 = at(0.95);
    result.p99 = at(0.99);
    for (size_t i = count; i-- > 0;)
        if (copy[i] != 0) {
            result.max = static_cast<double>(i);
            break;
        }
    return result;
}

}  // namespace sustain
