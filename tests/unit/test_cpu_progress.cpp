// CpuProgress: which CPUs the machine is running, from /proc/stat's per-CPU times.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "supervisor/cpu_progress.h"

using sustain::CpuProgress;

TEST_CASE("the per-CPU totals are read from /proc/stat's text, the all-CPU line left out") {
    const char* text =
        "cpu  431502 0 172510 7122205 659 0 12397 0 0 0\n"
        "cpu0 215000 0 86000 3561000 300 0 6000 0 0 0\n"
        "cpu1 216502 0 86510 3561205 359 0 6397 0 0 0\n"
        "intr 123 0 0\n"
        "ctxt 456\n";
    std::vector<uint64_t> totals;
    REQUIRE(CpuProgress::parse(text, totals));
    REQUIRE(totals.size() == 2);
    CHECK(totals[0] == 215000u + 86000u + 3561000u + 300u + 6000u);
    CHECK(totals[1] == 216502u + 86510u + 3561205u + 359u + 6397u);
}

TEST_CASE("text without per-CPU lines gives nothing") {
    std::vector<uint64_t> totals{1, 2};
    CHECK_FALSE(CpuProgress::parse("intr 1 2 3\n", totals));
    CHECK(totals.empty());
    CHECK_FALSE(CpuProgress::parse("", totals));
}

TEST_CASE("a CPU counts as running once its times are seen to move, and not after they stay still") {
    CpuProgress cpus;
    // Before any sample nothing is known: an unreadable /proc/stat changes nothing.
    CHECK(cpus.running(0, 1'000'000));
    cpus.sample(1'000'000);
    // This machine's own CPU 0 is read; not yet seen to move, so not known to run.
    CHECK_FALSE(cpus.running(0, 1'000'000));
    // An unknown CPU number is taken as running (judged as if this check did not exist).
    CHECK(cpus.running(100000, 1'000'000));
    cpus.reset();
    CHECK(cpus.running(0, 1'000'000));
}
