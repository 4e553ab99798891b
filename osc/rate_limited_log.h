// Rate-limited warnings, so that a flood of bad input cannot flood the log.
#pragma once

#include <spdlog/spdlog.h>

#include <array>
#include <cstdint>
#include <string>

#include "shm/clock.h"

namespace sustain {

/// Logs at most one line per key per interval and says how many were suppressed
/// ("... (36 similar suppressed)"). Thread: one owner thread.  RT-safe: no.
template <size_t Keys>
class RateLimitedLog {
public:
    explicit RateLimitedLog(uint64_t intervalNs = 1'000'000'000ull) : intervalNs_(intervalNs) {}

    void warn(size_t key, const std::string& text) {
        Entry& entry = entries_[key % Keys];
        const uint64_t now = monotonicNs();
        if (entry.lastNs != 0 && now - entry.lastNs < intervalNs_) {
            ++entry.suppressed;
            return;
        }
        if (entry.suppressed > 0)
            spdlog::warn("{} ({} similar suppressed)", text, entry.suppressed);
        else
            spdlog::warn("{}", text);
        entry.lastNs = now;
        entry.suppressed = 0;
    }

private:
    struct Entry {
        uint64_t lastNs = 0;
        uint64_t suppressed = 0;
    };
    uint64_t intervalNs_;
    std::array<Entry, Keys> entries_{};
};

}  // namespace sustain
