#include "supervisor/cpu_progress.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <cstring>

namespace sustain {

bool CpuProgress::parse(const char* text, std::vector<uint64_t>& totals) {
    totals.clear();
    for (const char* line = text; line != nullptr && *line != '\0';) {
        // "cpu " is the sum over all CPUs; "cpuN " one CPU. The lines come first, in order.
        if (std::strncmp(line, "cpu", 3) != 0) break;
        char* end = nullptr;
        const long cpu = std::strtol(line + 3, &end, 10);
        if (end != line + 3 && cpu >= 0 && static_cast<size_t>(cpu) < 4096) {
            uint64_t total = 0;
            for (const char* field = end; *field == ' ';) {
                char* after = nullptr;
                total += std::strtoull(field, &after, 10);
                if (after == field) break;
                field = after;
            }
            if (totals.size() <= static_cast<size_t>(cpu)) totals.resize(static_cast<size_t>(cpu) + 1, 0);
            totals[static_cast<size_t>(cpu)] = total;
        }
        line = std::strchr(line, '\n');
        if (line != nullptr) ++line;
    }
    return !totals.empty();
}

void CpuProgress::sample(uint64_t nowNs) {
    // The per-CPU lines come first; 16 KiB hold them for hundreds of CPUs.
    std::array<char, 16384> text{};
    const int fd = ::open("/proc/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    const ssize_t n = ::read(fd, text.data(), text.size() - 1);
    ::close(fd);
    if (n <= 0) return;
    text[static_cast<size_t>(n)] = '\0';
    if (!parse(text.data(), totals_)) return;
    const bool first = seen_.empty();
    seen_.resize(totals_.size());
    for (size_t cpu = 0; cpu < totals_.size(); ++cpu) {
        Seen& s = seen_[cpu];
        if (!first && totals_[cpu] != s.total) s.movedNs = nowNs;
        s.total = totals_[cpu];
    }
}

bool CpuProgress::running(int cpu, uint64_t nowNs) const {
    if (cpu < 0 || static_cast<size_t>(cpu) >= seen_.size()) return true;  // unknown CPU: as before
    const Seen& s = seen_[static_cast<size_t>(cpu)];
    return s.movedNs != 0 && nowNs - s.movedNs <= kQuietLimitNs;
}

}  // namespace sustain
