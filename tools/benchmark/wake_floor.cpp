// sustain-wake-floor: what waking a sleeping thread in another process costs on this
// machine, by the very mechanism the command path uses, with no engine around it.
//
// The engine's ring push -> control-thread drain latency, for a command that finds the
// worker's control thread asleep, is this wake-up plus a ring read. So its p99 can be no
// better than this floor: a target below the floor is one the machine cannot meet, and
// the ratio (push -> drain / floor) says what the engine adds.
//
// Two processes: the waker (this one, at nice -10 like sustaind's OSC thread) writes the
// time it sends into a socketpair; the sleeper (a forked child, SCHED_FIFO 1 like a
// worker's control thread) waits in ppoll() on the other end, reads, and notes now - sent.
// Wakes come 3-7 ms apart at random (the latency scenario's 200 messages/s), so the
// sleeper is asleep for every one. Prints one JSON object: count, p50/p95/p99/max in us.
// Exit: 0 measured; 2 setup error.
#include <poll.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include "shm/clock.h"
#include "shm/realtime.h"
#include "sustain_version.h"

namespace {

/// The sleeper: answers every wake with the latency it saw, until the waker closes.
int runSleeper(int fd) {
    sustain::requestLowRealtimePriority("wake-floor sleeper");
    pollfd wait{fd, POLLIN, 0};
    for (;;) {
        const int ready = ppoll(&wait, 1, nullptr, nullptr);
        if (ready < 0 && errno != EINTR) return 1;
        if (ready <= 0) continue;
        uint64_t sentNs = 0;
        const ssize_t got = read(fd, &sentNs, sizeof sentNs);
        if (got != sizeof sentNs) return 0;  // the waker is done
        const uint64_t latencyNs = sustain::monotonicNs() - sentNs;
        if (write(fd, &latencyNs, sizeof latencyNs) != sizeof latencyNs) return 1;
    }
}

double percentileUs(const std::vector<uint64_t>& sorted, double q) {
    if (sorted.empty()) return 0;
    const auto index = static_cast<size_t>(std::lround(q * static_cast<double>(sorted.size() - 1)));
    return static_cast<double>(sorted[std::min(index, sorted.size() - 1)]) / 1000.0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"sustain-wake-floor: the wake-up latency of a SCHED_FIFO 1 thread in another process, "
                 "woken through a socketpair as the command path wakes a worker's control thread"};
    app.set_version_flag("--version", std::string("sustain-wake-floor ") + SUSTAIN_VERSION);
    int count = 1000;
    app.add_option("--count", count, "wakes to measure")->check(CLI::Range(10, 1'000'000));
    CLI11_PARSE(app, argc, argv);

    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
        std::perror("socketpair");
        return 2;
    }
    const pid_t child = fork();
    if (child < 0) {
        std::perror("fork");
        return 2;
    }
    if (child == 0) {
        close(fds[0]);
        _exit(runSleeper(fds[1]));
    }
    close(fds[1]);
    if (setpriority(PRIO_PROCESS, 0, -10) != 0) std::perror("setpriority(-10), measured at the default instead");

    // The sleeper asks for its priority first thing; what it got is reported.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const bool sleeperFifo = (sched_getscheduler(child) & ~SCHED_RESET_ON_FORK) == SCHED_FIFO;
    std::mt19937 random(12345);
    std::uniform_int_distribution<int> gapUs(3000, 7000);
    std::vector<uint64_t> latencies;
    latencies.reserve(static_cast<size_t>(count));
    for (int i = 0; i < count; ++i) {
        std::this_thread::sleep_for(std::chrono::microseconds(gapUs(random)));
        const uint64_t sentNs = sustain::monotonicNs();
        if (write(fds[0], &sentNs, sizeof sentNs) != sizeof sentNs) break;
        uint64_t latencyNs = 0;
        if (read(fds[0], &latencyNs, sizeof latencyNs) != sizeof latencyNs) break;
        latencies.push_back(latencyNs);
    }
    close(fds[0]);
    waitpid(child, nullptr, 0);
    if (latencies.empty()) {
        std::fprintf(stderr, "sustain-wake-floor: no wake measured\n");
        return 2;
    }
    std::sort(latencies.begin(), latencies.end());
    const nlohmann::json out = {
        {"count", latencies.size()},
        {"sleeper", "SCHED_FIFO 1, ppoll on a socketpair (a worker's control thread)"},
        {"sleeper_got_sched_fifo", sleeperFifo},
        {"waker", "nice -10, one write per wake, 3-7 ms apart (sustaind's OSC thread at 200 messages/s)"},
        {"p50_us", percentileUs(latencies, 0.50)},
        {"p95_us", percentileUs(latencies, 0.95)},
        {"p99_us", percentileUs(latencies, 0.99)},
        {"max_us", static_cast<double>(latencies.back()) / 1000.0},
    };
    std::puts(out.dump().c_str());
    return 0;
}
