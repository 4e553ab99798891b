// The shared command ring: edges in one process, and 10 million records across two.
#include <doctest/doctest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <thread>

#include "shm/spsc_ring.h"

using namespace sustain;

namespace {
struct LocalRing {
    explicit LocalRing(uint32_t capacity) : slots(new Command[capacity]) { SpscRing<Command>::initialize(indices, capacity); }
    RingIndices indices;
    std::unique_ptr<Command[]> slots;
    SpscRing<Command> ring() { return SpscRing<Command>(indices, slots.get()); }
};

Command makeCommand(uint64_t sequence) {
    Command command{};
    command.sequence = sequence;
    command.value = static_cast<double>(sequence) * 0.5;
    command.param = static_cast<uint16_t>(sequence % kParamCount);
    return command;
}
}  // namespace

TEST_CASE("command ring: an empty ring pops nothing") {
    LocalRing local(4);
    auto ring = local.ring();
    Command out;
    CHECK_FALSE(ring.tryPop(out));
    CHECK(ring.sizeApprox() == 0);
}

TEST_CASE("command ring: a full ring rejects and counts, never overwrites") {
    LocalRing local(4);
    auto ring = local.ring();
    for (uint32_t i = 0; i < 4; ++i) REQUIRE(ring.tryPush(makeCommand(i)));
    CHECK_FALSE(ring.tryPush(makeCommand(99)));
    CHECK(ring.rejectedFull() == 1);
    Command out;
    for (uint32_t i = 0; i < 4; ++i) {
        REQUIRE(ring.tryPop(out));
        CHECK(out.sequence == i);
    }
    CHECK_FALSE(ring.tryPop(out));
}

TEST_CASE("command ring: wraps around many times in order") {
    LocalRing local(8);
    auto ring = local.ring();
    uint64_t next = 0, expected = 0;
    Command out;
    for (int round = 0; round < 1000; ++round) {
        const int burst = 1 + round % 8;
        for (int i = 0; i < burst; ++i) REQUIRE(ring.tryPush(makeCommand(next++)));
        for (int i = 0; i < burst; ++i) {
            REQUIRE(ring.tryPop(out));
            CHECK(out.sequence == expected++);
        }
    }
    CHECK(ring.rejectedFull() == 0);
}

TEST_CASE("command ring: sleep handshake never loses a wake") {
    LocalRing local(8);
    auto ring = local.ring();
    // Consumer announces sleep on an empty ring: the producer must be told to wake it.
    CHECK(ring.prepareToSleep());
    REQUIRE(ring.tryPush(makeCommand(1)));
    CHECK(ring.consumerNeedsWake());
    CHECK_FALSE(ring.consumerNeedsWake());  // one wake per sleep
    // A consumer that finds records while preparing must not sleep.
    CHECK_FALSE(ring.prepareToSleep());
    Command out;
    REQUIRE(ring.tryPop(out));
    // A busy consumer costs the producer nothing.
    REQUIRE(ring.tryPush(makeCommand(2)));
    CHECK_FALSE(ring.consumerNeedsWake());
}

TEST_CASE("command ring: two processes move 10 million records, none lost, duplicated or reordered") {
    constexpr uint64_t kRecords = 10'000'000;
    struct Shared {
        RingIndices indices;
        Command slots[1024];
    };
    void* memory = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(memory != MAP_FAILED);
    auto* shared = new (memory) Shared;
    SpscRing<Command>::initialize(shared->indices, 1024);

    const pid_t producer = fork();
    REQUIRE(producer >= 0);
    if (producer == 0) {
        SpscRing<Command> ring(shared->indices, shared->slots);
        for (uint64_t i = 1; i <= kRecords;) {
            if (ring.tryPush(makeCommand(i))) {
                ++i;
            } else {
                std::this_thread::yield();
            }
        }
        _exit(0);
    }
    SpscRing<Command> ring(shared->indices, shared->slots);
    uint64_t expected = 1, wrong = 0;
    Command out;
    while (expected <= kRecords) {
        if (!ring.tryPop(out)) {
            std::this_thread::yield();
            continue;
        }
        if (out.sequence != expected || out.value != static_cast<double>(expected) * 0.5 ||
            out.param != expected % kParamCount)
            ++wrong;
        ++expected;
    }
    int status = 0;
    waitpid(producer, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(wrong == 0);
    CHECK(expected == kRecords + 1);
    CHECK_FALSE(ring.tryPop(out));
    munmap(memory, sizeof(Shared));
}
