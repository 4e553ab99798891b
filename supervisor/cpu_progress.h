#pragma once
// Whether the machine runs a CPU at all.
//
// A virtual machine's host may leave one of its virtual CPUs unrun for up to the host's
// scheduling period (100 ms measured on a loaded 2-core guest) while the others go on. A
// process whose audio thread waits on that CPU misses cycles of the others without being
// hung; real-time priority inside the guest cannot help it. The guest sees such a CPU only
// in its accounting: every running CPU adds to its /proc/stat times at least once per
// accounting tick (USER_HZ, 10 ms), one the host does not run adds nothing.
//
// The supervisor counts a process's missed cycles only while the CPU it waits on is seen
// running (Supervisor::checkHang). Read only while some process is behind, so an engine
// that keeps up pays nothing for it.
#include <cstdint>
#include <vector>

namespace sustain {

class CpuProgress {
public:
    /// A CPU whose times did not move for this long is not being run by the machine: more
    /// than one accounting tick (10 ms) plus the supervisor's own wake-up jitter.
    static constexpr uint64_t kQuietLimitNs = 15'000'000;

    /// The per-CPU totals ("cpuN user nice system idle ..." summed) in /proc/stat's text,
    /// indexed by CPU number; false if the text has none.
    static bool parse(const char* text, std::vector<uint64_t>& totals);

    /// Reads /proc/stat and notes, per CPU, when its times last moved. Thread: main.
    void sample(uint64_t nowNs);

    /// Forgets every observation (nothing is behind): the next sample starts afresh.
    void reset() { seen_.clear(); }

    /// Whether `cpu` is known to have been run within kQuietLimitNs before nowNs. A CPU not
    /// yet seen to move since sampling began is not known to run: a process waiting on it
    /// is not counted as missing cycles until it is.
    bool running(int cpu, uint64_t nowNs) const;

private:
    struct Seen {
        uint64_t total = 0;
        uint64_t movedNs = 0;  // 0: not seen to move yet
    };
    std::vector<Seen> seen_;
    std::vector<uint64_t> totals_;  // scratch, kept to avoid allocating per sample
};

}  // namespace sustain
