// sustaind's graph changes never hold up supervision: a JACK server that does not answer
// (here: a real jackd, stopped with SIGSTOP) keeps only the graph thread waiting; requests
// beyond the bound are dropped and counted; shutdown does not wait for it forever.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <string>
#include <thread>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "supervisor/jack_graph.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

/// A private JACK dummy server, stopped (SIGSTOP) once it accepts clients.
struct StoppedJackServer {
    pid_t pid = -1;
    // A fixed name: JACK2 keeps few servers in its registry, and a name used once per run
    // cannot fill it; a server of this name left by a run that was killed is stopped first.
    std::string name = "sustain-unit-graph";

    StoppedJackServer() {
        std::system("pkill -KILL -f '^jackd -n sustain-unit-graph ' >/dev/null 2>&1");  // NOLINT(cert-env33-c)
        const char* argv[] = {"jackd", "-n", name.c_str(), "-d", "dummy", "-r", "48000", "-p", "64", nullptr};
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
        // NOLINTNEXTLINE(cppcoreguidelines-pro-type-const-cast): posix_spawn's historical signature
        REQUIRE(posix_spawnp(&pid, "jackd", &actions, nullptr, const_cast<char**>(argv), environ) == 0);
        posix_spawn_file_actions_destroy(&actions);
        setenv("JACK_DEFAULT_SERVER", name.c_str(), 1);
        const std::string probe = "JACK_DEFAULT_SERVER=" + name + " timeout 5 jack_lsp >/dev/null 2>&1";
        bool up = false;
        for (int i = 0; i < 100 && !up; ++i) {
            up = std::system(probe.c_str()) == 0;  // NOLINT(cert-env33-c): a test's fixed command
            if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        REQUIRE(up);
        kill(pid, SIGSTOP);
    }
    ~StoppedJackServer() {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
    }
};

}  // namespace

TEST_CASE("without a JACK server a graph change is nothing to do, and shutdown is prompt") {
    setenv("JACK_DEFAULT_SERVER", "sustain-unit-no-such-server", 1);
    std::atomic<uint64_t> dropped{0};
    const auto start = Clock::now();
    {
        sustain::JackGraph graph("sustain-unit-graph", dropped);
        graph.disconnectClient("sustain-unit-w0");
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    CHECK(msSince(start) < 1500.0);
    CHECK(dropped.load() == 0);
}

TEST_CASE("a JACK server that does not answer holds up no caller; the excess is dropped and counted") {
    StoppedJackServer server;
    std::atomic<uint64_t> dropped{0};
    const auto start = Clock::now();
    {
        sustain::JackGraph graph("sustain-unit-graph", dropped);
        double slowestMs = 0.0;
        // One request is taken by the graph thread (which then waits for the server), the
        // next kMaxPending wait in the queue, the rest are dropped.
        constexpr size_t kRequests = sustain::JackGraph::kMaxPending + 4;
        for (size_t i = 0; i < kRequests; ++i) {
            const auto call = Clock::now();
            graph.disconnectClient("sustain-unit-w" + std::to_string(i));
            slowestMs = std::max(slowestMs, msSince(call));
            if (i == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let the thread take it
        }
        CHECK(slowestMs < 50.0);
        CHECK(dropped.load() == kRequests - 1 - sustain::JackGraph::kMaxPending);
    }
    // The destructor waited its bounded time for the stuck request, then let it be.
    const double tookMs = msSince(start);
    CHECK(tookMs < 5000.0);
    MESSAGE("shutdown with a server that does not answer took " << tookMs << " ms");
}
