// From the OSC thread's router through the shared ring to the callback's queue: dual
// write, coalescing when a ring is full, coalescing per parameter in the control thread,
// a replacement worker skipping what its table snapshot already holds, and timed commands
// held until the callback's own frame comes near.
#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <vector>

#include "engine/control_thread.h"
#include "engine/rt/synth.h"
#include "osc/command_router.h"
#include "shm/clock.h"
#include "shm/frame_clock.h"
#include "shm/segment.h"
#include "tests/unit/segment_fixture.h"
#include "shm/spsc_ring.h"

using namespace sustain;

namespace {
std::vector<Command> drainAll(CallbackQueue& queue) {
    std::vector<Command> out;
    Command c;
    while (queue.try_dequeue(c)) out.push_back(c);
    return out;
}
}  // namespace

TEST_CASE("router: writes the table, then both attached workers' rings (dual write)") {
    auto segment = makeSegment();
    CommandRouter router(*segment);
    router.attachWorker(0, -1);
    router.attachWorker(1, -1);
    router.submit(kParamMasterGain, 0.5, 100);
    router.submit(voiceFreqParam(1), 880.0, 200);
    CHECK(segment->params.entries[kParamMasterGain].value.load() == 0.5);
    CHECK(segment->params.entries[voiceFreqParam(1)].version.load() == 2);
    for (uint32_t slot = 0; slot < 2; ++slot) {
        auto ring = commandRing(*segment, slot);
        Command c;
        REQUIRE(ring.tryPop(c));
        CHECK(c.sequence == 1);
        CHECK(c.receiveNs == 100);
        REQUIRE(ring.tryPop(c));
        CHECK(c.param == voiceFreqParam(1));
        CHECK_FALSE(ring.tryPop(c));
    }
    router.detachWorker(1);
    router.submit(kParamMasterGain, 0.25, 300);
    CHECK(commandRing(*segment, 1).sizeApprox() == 0);
    CHECK(commandRing(*segment, 0).sizeApprox() == 1);
}

TEST_CASE("router: a full ring coalesces into a refresh of the newest value, nothing is lost") {
    auto segment = makeSegment();
    CommandRouter router(*segment);
    router.attachWorker(0, -1);
    for (uint32_t i = 0; i < kCommandRingCapacity; ++i) router.submit(voiceFreqParam(0), 100.0 + i % 100, 1);
    router.submit(kParamMasterGain, 0.1, 1);  // does not fit
    router.submit(kParamMasterGain, 0.9, 1);  // folded into the same refresh
    CHECK(segment->osc.ringCoalesced.load() == 2);
    CHECK(router.flushPending());  // still full: the refresh stays owed
    auto ring = commandRing(*segment, 0);
    Command c;
    while (ring.tryPop(c)) {
    }
    CHECK_FALSE(router.flushPending());
    REQUIRE(ring.tryPop(c));
    CHECK(c.param == kParamMasterGain);
    CHECK(c.value == 0.9);
    CHECK((c.flags & kCommandFlagRefresh) != 0);
    CHECK_FALSE(ring.tryPop(c));
}

TEST_CASE("router: wakes a sleeping worker with one byte per batch, a busy one with none") {
    auto segment = makeSegment();
    int pair[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair) == 0);
    CommandRouter router(*segment);
    router.attachWorker(0, pair[0]);
    auto ring = commandRing(*segment, 0);
    char bytes[8];
    router.submit(kParamMasterGain, 0.5, 1);
    router.wakeSleepers();
    CHECK(read(pair[1], bytes, sizeof bytes) < 0);  // awake: no system call spent on it
    Command c;
    REQUIRE(ring.tryPop(c));
    REQUIRE(ring.prepareToSleep());
    router.submit(kParamMasterGain, 0.6, 1);
    router.submit(kParamMasterGain, 0.7, 1);
    CHECK(read(pair[1], bytes, sizeof bytes) < 0);  // nothing before the batch is done
    router.wakeSleepers();
    CHECK(read(pair[1], bytes, sizeof bytes) == 1);  // one byte for the sleeper, not one per message
    CHECK(segment->workers[0].wakesSent.load() == 1);
    router.wakeSleepers();
    CHECK(read(pair[1], bytes, sizeof bytes) < 0);  // nothing pushed since: no wake
    router.detachWorker(0);
    close(pair[0]);
    close(pair[1]);
}

TEST_CASE("control thread: coalesces a burst per parameter and keeps arrival order") {
    auto segment = makeSegment();
    CommandRouter router(*segment);
    router.attachWorker(0, -1);
    CallbackQueue queue(kCallbackQueueCapacity);
    const std::atomic<uint64_t> noBlockYet{0};
    CommandForwarder forwarder(*segment, 0, queue, noBlockYet);
    for (int i = 0; i < 100; ++i) router.submit(kParamMasterGain, i / 100.0, 1);
    router.submit(voiceFreqParam(2), 500.0, 1);
    router.submit(kParamMasterGain, 0.33, 1);
    CHECK_FALSE(forwarder.drainOnce());
    const auto forwarded = drainAll(queue);
    REQUIRE(forwarded.size() == 2);
    CHECK(forwarded[0].param == kParamMasterGain);
    CHECK(forwarded[0].value == 0.33);
    CHECK(forwarded[1].param == voiceFreqParam(2));
    CHECK(segment->workers[0].controlCoalesced.load() == 100);
    CHECK(segment->workers[0].drained.load() == 102);
}

TEST_CASE("control thread: a full callback queue keeps commands pending, never drops them") {
    auto segment = makeSegment();
    CommandRouter router(*segment);
    router.attachWorker(0, -1);
    CallbackQueue queue(1);  // moodycamel rounds up; fill whatever it holds
    while (queue.try_enqueue(Command{})) {
    }
    const std::atomic<uint64_t> noBlockYet{0};
    CommandForwarder forwarder(*segment, 0, queue, noBlockYet);
    router.submit(kParamMasterGain, 0.7, 1);
    CHECK(forwarder.drainOnce());  // pending
    drainAll(queue);
    CHECK_FALSE(forwarder.drainOnce());
    const auto forwarded = drainAll(queue);
    REQUIRE(forwarded.size() == 1);
    CHECK(forwarded[0].value == 0.7);
}

TEST_CASE("control thread: a new worker starts from the table and skips what it already holds") {
    auto segment = makeSegment();
    CommandRouter router(*segment);
    router.attachWorker(0, -1);
    router.submit(kParamMasterGain, 0.4, 1);
    router.submit(voiceFreqParam(0), 300.0, 1);
    RenderState state;
    initialRenderState(state, 0.0);
    CallbackQueue queue(kCallbackQueueCapacity);
    const std::atomic<uint64_t> noBlockYet{0};
    CommandForwarder forwarder(*segment, 0, queue, noBlockYet);
    forwarder.setSnapshot(loadStateTable(*segment, state));
    CHECK(state.master.current == 0.4);
    CHECK(state.voices[0].freq.current == 300.0);
    router.submit(kParamMasterGain, 0.8, 1);  // after the snapshot: must arrive
    forwarder.drainOnce();
    const auto forwarded = drainAll(queue);
    REQUIRE(forwarded.size() == 1);
    CHECK(forwarded[0].value == 0.8);
    CHECK(segment->workers[0].staleEpochSkips.load() == 2);
}

TEST_CASE("control thread: a timed command waits for the callback's own frame, not for a frame clock that is off") {
    auto segment = makeSegment();
    segment->config.framesPerBuffer = 64;
    segment->config.sampleRate = 48000;
    // The frame clock says frame 0 renders now (JACK's timer far off after a disturbance);
    // the callback has in fact rendered up to frame 100000.
    FrameAnchor anchor{};
    anchor.frame = 0;
    anchor.startNs = static_cast<int64_t>(monotonicNs());
    anchor.nsPerFrame = 1e9 / 48000;
    anchor.epoch = segment->slots[0].epoch.load();
    anchor.source = static_cast<uint64_t>(FrameClockSource::Jack);
    publishFrameAnchor(segment->clock, 0, anchor);
    std::atomic<uint64_t> callbackFrame{100000};
    CallbackQueue queue(kCallbackQueueCapacity);
    CommandForwarder forwarder(*segment, 0, queue, callbackFrame);
    const uint64_t lookahead = uint64_t{kTimedLookaheadBlocks} * 64;
    SpscRing<Command> ring = commandRing(*segment, 0);
    auto timed = [](uint64_t sequence, uint64_t dueFrame) {
        Command command{};
        command.sequence = sequence;
        command.param = kParamMasterGain;
        command.value = 0.5;
        command.flags = kCommandFlagTimed;
        command.dueFrame = dueFrame;
        return command;
    };
    REQUIRE(ring.tryPush(timed(1, 100000 + lookahead - 64)));  // within the lookahead: goes now
    REQUIRE(ring.tryPush(timed(2, 100000 + lookahead + 64)));  // beyond it: held
    forwarder.drainOnce();
    auto forwarded = drainAll(queue);
    REQUIRE(forwarded.size() == 1);
    CHECK(forwarded[0].sequence == 1);
    CHECK(forwarder.msUntilNextTimed(50) <= 2);  // a period and a bit away
    callbackFrame.store(100000 + 128);           // two more blocks rendered
    forwarder.drainOnce();
    forwarded = drainAll(queue);
    REQUIRE(forwarded.size() == 1);
    CHECK(forwarded[0].sequence == 2);
    CHECK(forwarder.msUntilNextTimed(50) == 50);  // nothing held
}

TEST_CASE("frame clock: the rate from the cycles' starts two seconds apart, the start never after the callback's") {
    constexpr double kNominal = 1e9 / 48000.0;
    constexpr uint64_t kPeriod = 64;
    FrameRateEstimate rate;
    FrameAnchor anchor{};
    // A clock 0.3 % slow: 1337.33 us per 64 frames instead of 1333.33, JACK's times exact.
    const double slowUsecsPerPeriod = 1333.3333 * 1.003;
    auto usecsAt = [&](uint64_t cycle) { return 5'000'000 + static_cast<uint64_t>(cycle * slowUsecsPerPeriod); };
    auto anchorAt = [&](uint64_t cycle, int64_t callbackLateNs) {
        const uint64_t usecs = usecsAt(cycle);
        REQUIRE(jackFrameAnchor(cycle * kPeriod, usecs, usecs + 1333, 0,
                                static_cast<int64_t>(usecs) * 1000 + callbackLateNs, kNominal, rate, anchor));
        return anchor.nsPerFrame;
    };
    // Until two seconds have passed: the nominal rate.
    CHECK(anchorAt(1000, 50'000) == doctest::Approx(kNominal));
    CHECK(anchorAt(2000, 50'000) == doctest::Approx(kNominal));
    // Then the measured one, whatever one cycle's own period says.
    CHECK(anchorAt(2600, 50'000) == doctest::Approx(kNominal * 1.003).epsilon(1e-5));
    CHECK(anchor.frame == 2600 * kPeriod);
    CHECK(anchor.startNs == static_cast<int64_t>(usecsAt(2600)) * 1000);
    // JACK's timer ahead of the callback (it lies after a disturbance): the callback's start.
    CHECK(anchorAt(2610, -3'000'000) == doctest::Approx(kNominal * 1.003).epsilon(1e-5));
    CHECK(anchor.startNs == static_cast<int64_t>(usecsAt(2610)) * 1000 - 3'000'000);
    // An estimate beyond 10 % of the nominal rate (a start taken in a disturbance) is not
    // believed; the last good one stays.
    const uint64_t usecs = usecsAt(2612) + 3'000'000;
    REQUIRE(jackFrameAnchor(2612 * kPeriod, usecs, usecs + 1333, 0, static_cast<int64_t>(usecs) * 1000, kNominal,
                            rate, anchor));
    CHECK(anchor.nsPerFrame == doctest::Approx(kNominal * 1.003).epsilon(1e-5));
    // Times that say the next cycle begins before this one make no anchor.
    CHECK_FALSE(jackFrameAnchor(6400, 1'000'000, 999'000, 0, 2'000'000'000, kNominal, rate, anchor));
}
