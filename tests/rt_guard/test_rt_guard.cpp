// Proves the real-time guard catches what it should and nothing it should not.
//
// Runs with LD_PRELOAD=librtguard.so (see meson.build). The region is entered through
// sustain::RtGuardScope and the weak hooks of engine/rt/rt_guard_hooks.h, exactly as the
// engine's callback does, so a pass also proves that weak references in a PIE resolve to
// the preloaded guard. Without the guard every test fails (requireGuard), never passes.
//
// Inside a region each test makes only the call under test: doctest's own macros allocate,
// so every CHECK runs outside, on deltas of the counters.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "engine/rt/rt_guard_hooks.h"
#include "tests/rt_guard/rt_guard.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using sustain::RtGuardScope;

// clang-analyzer does not know that a failed REQUIRE throws: it takes the weak hooks as
// possibly null after requireGuard() checked them.
// NOLINTBEGIN(clang-analyzer-core.CallAndMessage)

// Every test starts here: without the preloaded guard the hooks are null, RtGuardScope
// does nothing and every count would read as a clean pass.
void requireGuard() {
    // Compared here, not inside REQUIRE: doctest binds the operand to a reference, and
    // a compiler may assume a function reference is never null and fold the check away.
    const bool hooks = sustain_rt_guard_enter != nullptr && sustain_rt_guard_leave != nullptr;
    const bool queries = sustain_rt_guard_violations != nullptr &&
                         sustain_rt_guard_entries != nullptr &&
                         sustain_rt_guard_count != nullptr && sustain_rt_guard_report != nullptr;
    REQUIRE_MESSAGE(hooks, "librtguard.so is not preloaded: run with "
                           "LD_PRELOAD=<path>/librtguard.so");
    REQUIRE(queries);
}

// Counters at construction; delta() reads how much one of them moved since.
class Counts {
public:
    Counts() : total_(sustain_rt_guard_violations()), entries_(sustain_rt_guard_entries()) {
        for (const char* name : kWatched) before_[name] = sustain_rt_guard_count(name);
    }
    unsigned long long total() const { return sustain_rt_guard_violations() - total_; }
    unsigned long long entries() const { return sustain_rt_guard_entries() - entries_; }
    // NOLINTEND(clang-analyzer-core.CallAndMessage)
    unsigned long long of(const std::string& name) const {
        return sustain_rt_guard_count(name.c_str()) - before_.at(name);
    }

private:
    static constexpr const char* kWatched[] = {
        "malloc", "free",  "pthread_mutex_lock", "write", "nanosleep", "__cxa_throw",
        "__cxa_allocate_exception", "fopen", "fopen64"};
    unsigned long long total_;
    unsigned long long entries_;
    std::map<std::string, unsigned long long> before_;
};

// Volatile so the compiler can neither drop nor move the allocation.
void* volatile gSink = nullptr;

void sleepBriefly() {
    const timespec duration{0, 1000};
    ::nanosleep(&duration, nullptr);
}

// The same forbidden calls the tests make one by one, for the "nothing counted" cases.
void makeForbiddenCalls(int fd, std::mutex& mutex) {
    gSink = std::malloc(32);
    std::free(gSink);
    gSink = new int(7);
    delete static_cast<int*>(gSink);
    mutex.lock();
    mutex.unlock();
    CHECK(::write(fd, "x", 1) == 1);
    sleepBriefly();
    try {
        throw 42;
    } catch (const int&) {
    }
}

int openNull() {
    const int fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    return fd;
}

std::string readFile(const std::string& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A private report directory, removed with its files afterwards.
class ReportDir {
public:
    ReportDir() {
        const char* base = std::getenv("TMPDIR");
        path_ = std::string(base != nullptr && base[0] != '\0' ? base : "/tmp") + "/rtguard.XXXXXX";
        REQUIRE(::mkdtemp(path_.data()) != nullptr);
        REQUIRE(::setenv("SUSTAIN_RT_GUARD_REPORT", path_.c_str(), 1) == 0);
    }
    ~ReportDir() {
        ::unsetenv("SUSTAIN_RT_GUARD_REPORT");
        for (const std::string& file : files_) ::unlink(file.c_str());
        ::rmdir(path_.c_str());
    }
    ReportDir(const ReportDir&) = delete;
    ReportDir& operator=(const ReportDir&) = delete;

    /// The report path for a process; remembered so the destructor removes it.
    std::string fileFor(pid_t pid) {
        files_.push_back(path_ + "/rtguard." + std::to_string(pid) + ".json");
        return files_.back();
    }

private:
    std::string path_;
    std::vector<std::string> files_;
};

}  // namespace

TEST_CASE("rt guard: the hooks in this PIE resolve to the preloaded guard") {
    requireGuard();
    const Counts counts;
    { const RtGuardScope scope; }
    CHECK(counts.entries() == 1);
    CHECK(counts.total() == 0);
    CHECK(sustain_rt_guard_count("no_such_function") == ~0ULL);
}

TEST_CASE("rt guard: malloc inside the region is counted once") {
    requireGuard();
    const Counts counts;
    {
        const RtGuardScope scope;
        gSink = std::malloc(64);
    }
    std::free(gSink);
    CHECK(counts.of("malloc") == 1);
    CHECK(counts.total() == 1);
}

TEST_CASE("rt guard: operator new is counted (as the malloc it makes)") {
    requireGuard();
    const Counts counts;
    {
        const RtGuardScope scope;
        gSink = new int(5);
    }
    delete static_cast<int*>(gSink);
    CHECK(counts.of("malloc") == 1);
    CHECK(counts.total() == 1);
}

TEST_CASE("rt guard: std::mutex lock is counted") {
    requireGuard();
    std::mutex mutex;
    const Counts counts;
    {
        const RtGuardScope scope;
        mutex.lock();
    }
    mutex.unlock();
    CHECK(counts.of("pthread_mutex_lock") == 1);
    CHECK(counts.total() == 1);
}

TEST_CASE("rt guard: write() is counted") {
    requireGuard();
    const int fd = openNull();
    const Counts counts;
    ssize_t written = 0;
    {
        const RtGuardScope scope;
        written = ::write(fd, "x", 1);
    }
    ::close(fd);
    CHECK(written == 1);
    CHECK(counts.of("write") == 1);
    CHECK(counts.total() == 1);
}

TEST_CASE("rt guard: nanosleep is counted") {
    requireGuard();
    const Counts counts;
    {
        const RtGuardScope scope;
        sleepBriefly();
    }
    CHECK(counts.of("nanosleep") == 1);
    CHECK(counts.total() == 1);
}

TEST_CASE("rt guard: throw is counted") {
    requireGuard();
    const Counts counts;
    bool caught = false;
    {
        const RtGuardScope scope;
        try {
            throw 42;
        } catch (const int&) {
            caught = true;
        }
    }
    CHECK(caught);
    CHECK(counts.of("__cxa_allocate_exception") == 1);
    CHECK(counts.of("__cxa_throw") == 1);
    // The catch frees the exception object: also a violation, and also inside the region.
    CHECK(counts.of("free") == 1);
}

TEST_CASE("rt guard: only the outermost call counts (fopen, not the malloc inside it)") {
    requireGuard();
    const Counts counts;
    FILE* file = nullptr;
    {
        const RtGuardScope scope;
        file = ::fopen("/dev/null", "r");
    }
    REQUIRE(file != nullptr);
    ::fclose(file);
    // fopen64 when built with 64-bit file offsets, as meson does by default.
    CHECK(counts.of("fopen") + counts.of("fopen64") == 1);
    CHECK(counts.of("malloc") == 0);
    CHECK(counts.total() == 1);
}

TEST_CASE("rt guard: the same calls outside the region count nothing") {
    requireGuard();
    const int fd = openNull();
    std::mutex mutex;
    const Counts counts;
    makeForbiddenCalls(fd, mutex);
    ::close(fd);
    CHECK(counts.total() == 0);
}

TEST_CASE("rt guard: another thread's calls do not count while this thread is inside") {
    requireGuard();
    const int fd = openNull();
    std::mutex mutex;
    std::atomic<bool> go{false};
    std::atomic<bool> done{false};
    // Created before entering: starting a thread allocates.
    std::thread other([&] {
        while (!go.load(std::memory_order_acquire)) {
        }
        makeForbiddenCalls(fd, mutex);
        done.store(true, std::memory_order_release);
    });
    const Counts counts;
    {
        const RtGuardScope scope;
        go.store(true, std::memory_order_release);
        // Plain spinning: any waiting primitive would itself be a violation here.
        while (!done.load(std::memory_order_acquire)) {
        }
    }
    other.join();
    ::close(fd);
    CHECK(counts.entries() == 1);
    CHECK(counts.total() == 0);
}

TEST_CASE("rt guard: a thread's own region counts its calls while others are outside") {
    requireGuard();
    const Counts counts;
    std::thread other([] {
        const RtGuardScope scope;
        gSink = std::malloc(16);
    });
    other.join();
    std::free(gSink);
    CHECK(counts.of("malloc") == 1);
    CHECK(counts.total() == 1);
}

TEST_CASE("rt guard: nested enter/enter/leave/leave stays inside until the outer leave") {
    requireGuard();
    const Counts counts;
    void* inner = nullptr;
    void* betweenLeaves = nullptr;
    {
        const RtGuardScope outer;
        {
            const RtGuardScope nested;
            gSink = std::malloc(8);
            inner = gSink;
        }
        gSink = std::malloc(8);  // still inside the outer scope
        betweenLeaves = gSink;
    }
    gSink = std::malloc(8);  // outside: not counted
    std::free(gSink);
    std::free(inner);
    std::free(betweenLeaves);
    CHECK(counts.entries() == 2);
    CHECK(counts.of("malloc") == 2);
    CHECK(counts.total() == 2);
}

TEST_CASE("rt guard: a stray leave does not leave the thread unguarded afterwards") {
    requireGuard();
    const Counts counts;
    sustain_rt_guard_leave();  // unbalanced: clamped at depth 0
    {
        const RtGuardScope scope;
        gSink = std::malloc(8);
    }
    std::free(gSink);
    CHECK(counts.of("malloc") == 1);
}

TEST_CASE("rt guard: the report is written on request and never counts itself") {
    requireGuard();
    ReportDir dir;
    const Counts counts;
    int result = -1;
    {
        // From inside the region: the report's own open/write/rename must not count.
        const RtGuardScope scope;
        result = sustain_rt_guard_report();
    }
    CHECK(result == 0);
    CHECK(counts.total() == 0);
    const std::string report = readFile(dir.fileFor(::getpid()));
    CHECK(report.rfind("{\"pid\":" + std::to_string(::getpid()) + ",", 0) == 0);
    CHECK(report.find("\"exe\":\"") != std::string::npos);
    CHECK(report.find("test_rt_guard") != std::string::npos);
    CHECK(report.find("\"violations\":{\"malloc\":") != std::string::npos);
    CHECK(report.find("\"total\":" + std::to_string(sustain_rt_guard_violations()) + "}") !=
          std::string::npos);
}

TEST_CASE("rt guard: without a report directory nothing is written") {
    requireGuard();
    ::unsetenv("SUSTAIN_RT_GUARD_REPORT");
    CHECK(sustain_rt_guard_report() == 1);
}

TEST_CASE("rt guard: exit() writes the report; a forked child reports only its own calls") {
    requireGuard();
    ReportDir dir;
    // Stop the child from flushing the parent's buffered output a second time.
    ::fflush(nullptr);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        {
            const RtGuardScope scope;
            gSink = std::malloc(64);
        }
        std::exit(0);  // the guard's destructor writes the report
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    const std::string report = readFile(dir.fileFor(child));
    INFO("report: " << report);
    CHECK(report.rfind("{\"pid\":" + std::to_string(child) + ",", 0) == 0);
    CHECK(report.find("\"guarded_calls\":1,") != std::string::npos);
    CHECK(report.find("\"malloc\":1,") != std::string::npos);
    CHECK(report.find("\"total\":1}") != std::string::npos);
}
