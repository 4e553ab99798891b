// The failover state machine without processes: two worker callbacks and an output stage
// callback driven by hand over one in-memory segment, cycle by cycle, in both orders a JACK
// cycle may run them in.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "engine/rt/audio_callback.h"
#include "engine/rt/callback_timing.h"
#include "engine/rt/output_callback.h"
#include "engine/rt/synth.h"
#include "shm/clock.h"
#include "shm/fencing.h"
#include "shm/frame_clock.h"
#include "shm/seqlock.h"
#include "shm/segment.h"

using namespace sustain;

namespace {
constexpr uint32_t kFrames = 64;

struct Worker {
    std::unique_ptr<CallbackQueue> queue = std::make_unique<CallbackQueue>(kCallbackQueueCapacity);
    std::unique_ptr<RtLogRing> log = std::make_unique<RtLogRing>();
    std::unique_ptr<CallbackContext> context = std::make_unique<CallbackContext>();
    float out[kFrames * 2] = {};
    void render() { renderCallbackBlock(*context, out, kFrames, false); }
};

struct Rig {
    std::unique_ptr<Segment> segment = std::make_unique<Segment>();
    Worker workers[2];
    std::unique_ptr<OutputContext> output = std::make_unique<OutputContext>();
    float played[kFrames * 2] = {};
    std::vector<float> heard;

    explicit Rig(bool relay) {
        initializeSegment(*segment, getpid());
        segment->config.sampleRate = 48000;
        for (uint32_t slot = 0; slot < 2; ++slot) {
            WorkerSlot& info = segment->slots[slot];
            info.epoch.store(10 + slot);
            info.role.store(static_cast<uint32_t>(slot == 0 ? WorkerRole::Active : WorkerRole::Standby));
            info.state.store(static_cast<uint32_t>(slot == 0 ? WorkerState::Active : WorkerState::Warm));
            CallbackContext& c = *workers[slot].context;
            c.segment = segment.get();
            c.slot = slot;
            c.voices = 1;
            c.relay = relay;
            c.startEpoch = 10 + slot;
            c.queue = workers[slot].queue.get();
            c.log = workers[slot].log.get();
            initialRenderState(c.state, 0.5);
        }
        segment->control.activeSlot.store(0);
        segment->outputs[0].epoch.store(20);
        output->segment = segment.get();
        output->slot = 0;
        output->startEpoch = 20;
    }

    /// One JACK cycle: the clients in the given order ('a' active worker 0, 's' standby
    /// worker 1, 'o' output stage; a dead or hung client is simply left out).
    void cycle(const char* order) {
        for (const char* c = order; *c; ++c) {
            if (*c == 'a') workers[0].render();
            if (*c == 's') workers[1].render();
            if (*c == 'o') {
                renderOutputBlock(*output, played, kFrames);
                for (uint32_t f = 0; f < kFrames; ++f) heard.push_back(played[size_t{f} * 2]);
            }
        }
    }

    void send(uint32_t param, double value, uint64_t sequence) {
        Command command{};
        command.param = static_cast<uint16_t>(param);
        command.value = value;
        command.sequence = sequence;
        for (Worker& w : workers) REQUIRE(w.queue->try_enqueue(command));
    }
};

/// Samples in the first run of a whole period of exact zeros from `from` on (0: none).
size_t firstSilentRun(const std::vector<float>& x, size_t from) {
    size_t run = 0;
    for (size_t n = from; n < x.size(); ++n) {
        run = x[n] == 0.0f ? run + 1 : 0;
        if (run == kFrames) return run;
    }
    return 0;
}

/// Largest deviation from the sine recurrence x[n] = 2cos(w)x[n-1] - x[n-2].
double worstResidual(const std::vector<float>& x, size_t from, double freq) {
    const double c = 2.0 * std::cos(2.0 * M_PI * freq / 48000.0);
    double worst = 0.0;
    for (size_t n = std::max<size_t>(from, 2); n < x.size(); ++n)
        worst = std::max(worst, std::fabs(x[n] - c * x[n - 1] + x[n - 2]));
    return worst;
}
}  // namespace

TEST_CASE("fencing: a worker whose epoch is stale publishes nothing, consumes nothing, plays silence") {
    Rig rig(false);
    rig.cycle("a");
    const uint64_t published = rig.segment->state[0].sequence.load();
    const uint64_t lastBlock = rig.segment->slots[0].lastBlock.load();
    rig.segment->slots[0].epoch.store(99);  // sustaind fenced it
    rig.send(kParamMasterGain, 0.1, 5);
    rig.cycle("a");
    CHECK(rig.segment->state[0].sequence.load() == published);
    CHECK(rig.segment->slots[0].lastBlock.load() == lastBlock);
    CHECK(rig.workers[0].queue->size_approx() == 1);  // not consumed
    for (float s : rig.workers[0].out) CHECK(s == 0.0f);
}

TEST_CASE("relay: the standby renders the active's blocks bit for bit, whatever the order in a cycle") {
    Rig rig(true);
    const char* orders[] = {"aso", "sao", "oas", "osa", "soa", "aos"};
    for (int i = 0; i < 60; ++i) rig.cycle(orders[i % 6]);
    const OutputMetrics& m = rig.segment->output;
    CHECK(m.unfilled.load() == 0);
    CHECK(m.fromStandby.load() == 0);
    CHECK(m.compared.load() > 40);
    CHECK(m.matched.load() == m.compared.load());
    CHECK(rig.segment->slots[1].syncedBlocks.load() > 30);
}

TEST_CASE("relay: the active dies; the output plays the standby's blocks with no damaged sample") {
    for (const char* order : {"aso", "sao", "oas", "osa"}) {
        CAPTURE(order);
        Rig rig(true);
        for (int i = 0; i < 20; ++i) rig.cycle(order);
        rig.send(voiceFreqParam(0), 660.0, 7);  // in flight when the active dies
        for (int i = 0; i < 40; ++i) rig.cycle("so");  // the active is gone: only the standby and the output run
        const OutputMetrics& m = rig.segment->output;
        CHECK(m.unfilled.load() == 0);
        CHECK(m.fromStandby.load() >= 38);
        // No sample departs from a sine whose frequency glides (the ramp): the residual of
        // the recurrence stays tiny everywhere once the tone plays.
        CHECK(worstResidual(rig.heard, size_t{3} * kFrames, 440.0) < 0.02);
        // and the command sent before the death was not lost: the standby glided to 660 Hz
        CHECK(rig.workers[1].context->state.voices[0].freq.current == doctest::Approx(660.0));
    }
}

TEST_CASE("relay: a command reaches the standby before the active: held until the active confirms it") {
    Rig rig(true);
    for (int i = 0; i < 10; ++i) rig.cycle("aso");
    Command command{};
    command.param = static_cast<uint16_t>(kParamMasterGain);
    command.value = 0.25;
    command.sequence = 3;
    REQUIRE(rig.workers[1].queue->try_enqueue(command));
    rig.cycle("sao");  // the standby applies it to its block; the active has not seen it yet
    CHECK(rig.workers[1].context->pending[kParamMasterGain].valid);
    rig.cycle("sao");  // re-synced from the active's state, which lacks it: applied again, still held
    CHECK(rig.workers[1].context->pending[kParamMasterGain].valid);
    REQUIRE(rig.workers[0].queue->try_enqueue(command));
    rig.cycle("aso");  // the active applied it: confirmed
    CHECK_FALSE(rig.workers[1].context->pending[kParamMasterGain].valid);
}

TEST_CASE("direct: the standby shadows in silence and takes over after two cycles without the active") {
    Rig rig(false);
    for (int i = 0; i < 40; ++i) rig.cycle(i % 2 ? "as" : "sa");
    for (float s : rig.workers[1].out) CHECK(s == 0.0f);
    CHECK(rig.segment->slots[1].takeover.load() == 0);
    // One missed cycle can be an order flip (a ThreadSanitizer build waits longer).
    for (uint32_t missed = 1; missed < kTakeoverCycles; ++missed) {
        rig.cycle("s");
        CHECK(rig.segment->slots[1].takeover.load() == 0);
    }
    rig.cycle("s");
    CHECK(rig.segment->slots[1].takeover.load() == 1);
    bool sound = false;
    for (float s : rig.workers[1].out) sound = sound || s != 0.0f;
    CHECK(sound);
}

TEST_CASE("relay: a number the standby skipped is played from the fenced active that completed it") {
    // The standby runs before the active in these cycles, so it renders each number from the
    // active's previous state (after it, it would render the next number ahead of the active).
    for (const char* order : {"sao", "osa"}) {
        CAPTURE(order);
        Rig rig(true);
        for (int i = 0; i < 20; ++i) rig.cycle(order);
        // JACK does not run the standby in one cycle; in the next it takes the active's newer
        // state and renders the number after it: the one it missed exists in the active's ring only.
        rig.cycle("ao");
        rig.cycle("s");
        CHECK(rig.workers[1].context->state.blocks == rig.workers[0].context->state.blocks + 1);
        // Then the active dies and sustaind fences it, before the output has played that block.
        fenceSlot(rig.segment->control, rig.segment->slots[0]);
        rig.segment->slots[0].role.store(static_cast<uint32_t>(WorkerRole::None));
        rig.cycle("o");
        for (int i = 0; i < 20; ++i) rig.cycle("so");
        const OutputMetrics& m = rig.segment->output;
        CHECK(m.unfilled.load() == 0);
        CHECK(m.fromFenced.load() >= 1);
        CHECK(worstResidual(rig.heard, size_t{3} * kFrames, 440.0) < 0.02);
        // A block the fenced active completes after the fence is not taken: the slot is
        // fenced below the number it had reached.
        CHECK(rig.segment->slots[0].fencedBelowBlock.load() <= rig.segment->slots[0].lastBlock.load());
    }
}

TEST_CASE("relay: after a cold start the standby follows the new active's numbering") {
    Rig rig(true);
    for (int i = 0; i < 30; ++i) rig.cycle("aso");
    // The active is replaced by a fresh process that starts from the table: new epoch,
    // block numbers from 0 again.
    rig.segment->slots[0].epoch.store(50);
    CallbackContext& fresh = *rig.workers[0].context;
    fresh.startEpoch = 50;
    initialRenderState(fresh.state, 0.5);
    for (int i = 0; i < 10; ++i) rig.cycle("aso");
    CHECK(rig.workers[1].context->syncedEpoch == 50);
    CHECK(rig.workers[1].context->state.blocks <= 12);  // renumbered with the new active, not 40
    CHECK(rig.segment->output.resyncs.load() >= 1);
}

TEST_CASE("relay: a play position ahead of the active waits for it instead of running away") {
    Rig rig(true);
    for (int i = 0; i < 10; ++i) rig.cycle("aso");
    OutputMetrics& m = rig.segment->output;
    m.nextBlock.store(m.nextBlock.load() + 3);  // e.g. locked to a standby that then renumbered
    for (int i = 0; i < 20; ++i) rig.cycle("aso");
    const uint64_t unfilledAfterCatchUp = m.unfilled.load();
    CHECK(unfilledAfterCatchUp <= 4);  // a few silent cycles while it waits, then sound
    for (int i = 0; i < 40; ++i) rig.cycle(i % 2 ? "aso" : "oas");
    CHECK(m.unfilled.load() == unfilledAfterCatchUp);  // and it stays with the active
}

TEST_CASE("relay: a stage that lost its place while no worker renders counts its silent cycles") {
    Rig rig(true);
    for (int i = 0; i < 10; ++i) rig.cycle("aso");
    OutputMetrics& m = rig.segment->output;
    const uint64_t before = m.unfilled.load();
    m.synced.store(0);                         // a re-lock
    for (WorkerSlot& slot : rig.segment->slots) slot.lastCallbackNs.store(1);  // neither worker has run since
    for (int i = 0; i < 5; ++i) rig.cycle("o");
    CHECK(m.unfilled.load() == before + 5);
    CHECK(m.synced.load() == 0);
}

TEST_CASE("relay: a stage that lost its place at a failover locks to the promoted standby at once") {
    for (const char* order : {"so", "os"}) {
        CAPTURE(order);
        Rig rig(true);
        for (int i = 0; i < 20; ++i) rig.cycle("aso");
        // The active dies; sustaind fences it and promotes the standby (its role and the
        // active slot). The standby's state stays `warm` until its control thread next loops,
        // which can be 50 ms away.
        Segment& segment = *rig.segment;
        fenceSlot(segment.control, segment.slots[0]);
        segment.slots[1].role.store(static_cast<uint32_t>(WorkerRole::Active));
        segment.control.activeSlot.store(1);
        OutputMetrics& m = segment.output;
        m.synced.store(0);  // the stage lost its place at the fault (a re-lock)
        const uint64_t before = m.unfilled.load();
        const size_t from = rig.heard.size();
        for (int i = 0; i < 20; ++i) rig.cycle(order);
        CHECK(m.unfilled.load() <= before + 1);  // not a period of silence per cycle until the state says active
        CHECK(firstSilentRun(rig.heard, from + kFrames) == 0);
    }
}

TEST_CASE("relay: while the spare is missing the active renders a block ahead, which covers a cycle JACK skips it in") {
    for (const bool missing : {false, true}) {
        CAPTURE(missing);
        Rig rig(true);
        for (int i = 0; i < 20; ++i) rig.cycle("oas");
        // The play position one period behind the active, as JACK's frame times lock it:
        // the stage plays the block the active completed in the previous cycle.
        OutputMetrics& m = rig.segment->output;
        m.nextBlock.store(rig.segment->slots[0].lastBlock.load() - 1);
        const size_t relocked = rig.heard.size() + kFrames;  // that jump is the test's, not heard
        // The standby is gone and its replacement not yet in step (sustaind marks the slot
        // dead, then starting): only the active renders. In the other run the slot stays
        // warm (a standby sustaind has not yet found hung), so nothing changes.
        if (missing) rig.segment->slots[1].state.store(static_cast<uint32_t>(WorkerState::Dead));
        for (int i = 0; i < 10; ++i) rig.cycle("oa");
        rig.cycle("o");   // JACK did not run the active this cycle
        rig.cycle("oa");  // and the stage runs before it in the next
        CHECK(m.unfilled.load() == (missing ? 0 : 1));
        for (int i = 0; i < 10; ++i) rig.cycle("oa");
        CHECK(m.unfilled.load() == (missing ? 0 : 1));
        if (missing) CHECK(worstResidual(rig.heard, relocked, 440.0) < 0.02);
    }
}

namespace {
void sendTimed(Rig& rig, uint32_t param, double value, uint64_t sequence, uint64_t dueFrame) {
    Command command{};
    command.param = static_cast<uint16_t>(param);
    command.value = value;
    command.sequence = sequence;
    command.dueFrame = dueFrame;
    command.flags = kCommandFlagTimed;
    for (Worker& w : rig.workers) REQUIRE(w.queue->try_enqueue(command));
}

/// The first sample of `heard` (from `from` on) that is not exactly 0.
size_t firstSound(const std::vector<float>& heard, size_t from) {
    for (size_t i = from; i < heard.size(); ++i)
        if (heard[i] != 0.0f) return i;
    return heard.size();
}

/// What the output plays is whole blocks, one or two behind the workers (depending on where
/// it locked on): the sound must start at the due sample within its block.
void checkOnsetAt(const Rig& rig, size_t heardBefore, uint64_t due, uint64_t rendered) {
    const size_t onset = firstSound(rig.heard, heardBefore);
    CHECK(onset % kFrames == due % kFrames);
    const size_t renderedIndex = rig.heard.size() - static_cast<size_t>(rendered - due);
    CHECK(onset > renderedIndex);
    CHECK(onset <= renderedIndex + size_t{2} * kFrames);
}
}  // namespace

TEST_CASE("timed: a change applies at its own sample, mid-block, in the active and the standby alike") {
    for (const char* order : {"aso", "sao", "osa"}) {
        CAPTURE(order);
        Rig rig(true);
        rig.send(kParamMasterGain, 0.0, 1);
        for (int i = 0; i < 20; ++i) rig.cycle(order);  // silent now (the ramp is over)
        const uint64_t frame = rig.workers[0].context->state.frame;
        const uint64_t due = frame + uint64_t{10} * kFrames + 37;  // 37 samples into a block
        sendTimed(rig, kParamMasterGain, 0.5, 2, due);
        const size_t heardBefore = rig.heard.size();
        for (int i = 0; i < 20; ++i) rig.cycle(order);
        checkOnsetAt(rig, heardBefore, due, rig.workers[0].context->state.frame);
        CHECK(rig.segment->output.matched.load() == rig.segment->output.compared.load());  // standby bit-identical
        CHECK(rig.segment->workers[0].timedApplied.load() == 1);
        CHECK(rig.segment->workers[0].timedLate.load() == 0);
    }
}

TEST_CASE("timed: a change waiting when the active dies is applied by the standby at the same sample") {
    Rig rig(true);
    rig.send(kParamMasterGain, 0.0, 1);
    for (int i = 0; i < 20; ++i) rig.cycle("aso");
    const uint64_t due = rig.workers[0].context->state.frame + uint64_t{8} * kFrames + 5;
    sendTimed(rig, kParamMasterGain, 0.5, 2, due);
    for (int i = 0; i < 3; ++i) rig.cycle("aso");
    const size_t heardBefore = rig.heard.size();
    for (int i = 0; i < 20; ++i) rig.cycle("so");  // the active is gone
    checkOnsetAt(rig, heardBefore, due, rig.workers[1].context->state.frame);
    CHECK(rig.segment->output.unfilled.load() == 0);
}

TEST_CASE("timed: a change whose frame has passed applies at once, unless a newer value is in force") {
    Rig rig(true);
    for (int i = 0; i < 10; ++i) rig.cycle("aso");
    sendTimed(rig, voiceFreqParam(0), 550.0, 5, 3);  // frame 3 is long gone
    rig.cycle("aso");
    CHECK(rig.workers[0].context->state.voices[0].freq.target == 550.0);
    CHECK(rig.segment->workers[0].timedLate.load() == 1);
    rig.send(voiceFreqParam(0), 660.0, 7);
    rig.cycle("aso");
    sendTimed(rig, voiceFreqParam(0), 440.0, 6, 3);  // older than the 660 in force
    rig.cycle("aso");
    CHECK(rig.workers[0].context->state.voices[0].freq.target == 660.0);
}

TEST_CASE("relay: a cold start continues the frame numbering, so timed changes keep their time") {
    Rig rig(true);
    for (int i = 0; i < 30; ++i) rig.cycle("aso");
    const uint64_t lastFrame = rig.workers[0].context->state.frame;
    REQUIRE(lastFrame >= 30 * kFrames);
    // Both workers die; 20 ms later a fresh active starts from the table (blocks from 0
    // again) and takes up the frame numbering where the last anchor says it is now.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    rig.segment->slots[0].epoch.store(60);
    CallbackContext& fresh = *rig.workers[0].context;
    fresh.startEpoch = 60;
    fresh.resumeFrameNumbering = true;
    initialRenderState(fresh.state, 0.5);
    rig.cycle("ao");
    CHECK(fresh.state.blocks == 1);
    FrameAnchor anchor{};
    REQUIRE(readFrameClock(*rig.segment, anchor));
    CHECK(anchor.epoch == 60);
    // At least the 20 ms (960 frames) past the dead worker's last block, not frame 0.
    CHECK(anchor.frame >= lastFrame - kFrames + 900);
}

TEST_CASE("frame clock: the active slot's anchor of its current epoch, else the one written last") {
    Rig rig(true);
    for (int i = 0; i < 5; ++i) rig.cycle("aso");
    FrameAnchor anchor{};
    REQUIRE(readFrameClock(*rig.segment, anchor));
    CHECK(anchor.epoch == 10);
    // Failover: the standby is active now but has not rendered as such yet; the old active's
    // anchor (same numbering) is still the clock.
    rig.segment->slots[0].epoch.store(99);  // fenced
    rig.segment->slots[1].role.store(static_cast<uint32_t>(WorkerRole::Active));
    rig.segment->control.activeSlot.store(1);
    REQUIRE(readFrameClock(*rig.segment, anchor));
    CHECK(anchor.epoch == 10);
    rig.cycle("so");
    REQUIRE(readFrameClock(*rig.segment, anchor));
    CHECK(anchor.epoch == 11);
    // The fenced process runs on for a moment: its anchor, in its own slot, is not used.
    rig.cycle("aso");
    REQUIRE(readFrameClock(*rig.segment, anchor));
    CHECK(anchor.epoch == 11);
}

TEST_CASE("relay: an active killed mid-write of its state is never followed into a torn state") {
    Rig rig(true);
    for (int i = 0; i < 20; ++i) rig.cycle("aso");
    const size_t heardBefore = rig.heard.size();
    const uint64_t synced = rig.segment->slots[1].syncedBlocks.load();
    // The active dies inside its seqlock write: sequence odd, some words garbage.
    PublishedState& published = rig.segment->state[0];
    published.sequence.store(seqlockBegin(published.sequence.load()));
    for (size_t w = 0; w < kPublishedRenderWords / 2; ++w) published.words[w].store(0x7ff8dead0000beefull);
    for (int i = 0; i < 10; ++i) rig.cycle("so");
    CHECK(rig.segment->slots[1].syncedBlocks.load() == synced);  // nothing taken from the dead writer
    CHECK(worstResidual(rig.heard, heardBefore - 2, 440.0) < 1e-4);
    // A replacement in that slot writes: the parity is right again and it is followed.
    rig.segment->slots[0].epoch.store(70);
    CallbackContext& fresh = *rig.workers[0].context;
    fresh.startEpoch = 70;
    initialRenderState(fresh.state, 0.5);
    for (int i = 0; i < 5; ++i) rig.cycle("aso");
    CHECK(published.sequence.load() % 2 == 0);
    CHECK(rig.workers[1].context->syncedEpoch == 70);
    CHECK(rig.segment->slots[1].syncedBlocks.load() > synced);
}

TEST_CASE("relay: a block rewritten under the same number while it is read is never taken torn") {
    // A standby may write a block number again (from the active's newer state) while the
    // output stage copies it; the tag is the same before and after such a copy.
    auto segment = std::make_unique<Segment>();
    initializeSegment(*segment, getpid());
    AudioRing& ring = segment->audio[0];
    std::atomic<bool> stop{false};
    std::thread writer([&] {
        uint64_t round = 0;
        while (!stop.load(std::memory_order_relaxed)) {
            AudioBlock& block = ring.blocks[5];
            const float value = (round++ % 2) == 0 ? 0.25f : 0.5f;
            const uint64_t begin = seqlockBegin(block.sequence.load(std::memory_order_relaxed));
            block.sequence.store(begin, std::memory_order_relaxed);
            std::atomic_thread_fence(std::memory_order_release);
            block.tag.store(6, std::memory_order_relaxed);
            block.epoch.store(3, std::memory_order_relaxed);
            block.frames = kFrames;
            for (uint32_t i = 0; i < kFrames * 2; ++i) block.samples[i].store(value, std::memory_order_relaxed);
            block.sequence.store(begin + 1, std::memory_order_release);
            // Now and then a pause, so that some copies also find the block at rest.
            if (round % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
    });
    float out[kFrames * 2];
    uint64_t taken = 0, torn = 0;
    const uint64_t until = monotonicNs() + 200'000'000;
    while (monotonicNs() < until) {
        if (!readAudioBlock(ring, 5, 3, kFrames, out, 2)) continue;
        ++taken;
        for (uint32_t i = 1; i < kFrames * 2; ++i)
            if (out[i] != out[0]) {
                ++torn;
                break;
            }
    }
    stop.store(true);
    writer.join();
    CHECK(taken > 0);
    CHECK(torn == 0);
}

TEST_CASE("direct: a standby not yet in step never takes over (it has just joined the graph)") {
    Rig rig(false);
    for (int i = 0; i < 5; ++i) rig.cycle("as");
    for (int i = 0; i < 10; ++i) rig.cycle("s");
    CHECK(rig.segment->slots[1].takeover.load() == 0);
    for (float s : rig.workers[1].out) CHECK(s == 0.0f);
}

namespace {
/// Direct layout: what the two workers put in the mix this cycle, summed as JACK does.
std::vector<float> mixed(Rig& rig) {
    std::vector<float> sum(kFrames);
    for (size_t f = 0; f < kFrames; ++f) sum[f] = rig.workers[0].out[f * 2] + rig.workers[1].out[f * 2];
    return sum;
}
}  // namespace

TEST_CASE("direct: an active JACK did not run for a few cycles gets the sound back, with no cycle doubled or silent") {
    Rig rig(false);
    jack_nframes_t frame = 1000;
    // Both workers read the JACK frame time of the cycle through this fake clock.
    for (Worker& w : rig.workers) w.context->jackPeriodFrames = kFrames;
    std::vector<float> heard;
    auto cycle = [&](const char* order) {
        for (Worker& w : rig.workers) w.context->fakeCycleFrame = frame;
        for (Worker& w : rig.workers) std::fill(std::begin(w.out), std::end(w.out), 0.0f);
        rig.cycle(order);
        const std::vector<float> sum = mixed(rig);
        heard.insert(heard.end(), sum.begin(), sum.end());
        frame += kFrames;
    };
    for (int i = 0; i < 40; ++i) cycle("as");
    const size_t before = heard.size();
    for (int i = 0; i < 3; ++i) cycle("s");  // the active is late: not run
    CHECK(rig.segment->slots[1].takeover.load() == 1);
    for (int i = 0; i < 4; ++i) cycle(i % 2 ? "as" : "sa");  // it runs again, in either order
    CHECK(rig.segment->slots[1].takeover.load() == 0);
    CHECK(rig.segment->slots[1].handbacks.load() == 1);
    for (int i = 0; i < 10; ++i) cycle("as");
    const size_t afterHandback = heard.size();
    // One voice at gain 1, master 0.5: never louder (doubled). The cycles before the takeover
    // carry nothing from either worker (in a real graph: the late active's stale buffer);
    // from the takeover on, the sound continues sample for sample through the handback.
    float peak = 0.0f;
    for (size_t i = before; i < heard.size(); ++i) peak = std::max(peak, std::fabs(heard[i]));
    CHECK(peak <= 0.5001f);
    const size_t takeover = before + size_t{kTakeoverCycles - 1} * kFrames;
    for (size_t i = before; i < takeover; ++i) CHECK(heard[i] == 0.0f);
    CHECK(worstResidual(std::vector<float>(heard.begin(), heard.begin() + static_cast<long>(afterHandback)),
                        takeover + 2, 440.0) < 1e-4);
    // Fewer than kWarmBlocks cycles after the handback the active really stops: the standby,
    // in step all along (the active took its state), takes over as fast as ever.
    for (int i = 0; i < 3; ++i) cycle("s");
    CHECK(rig.segment->slots[1].takeover.load() != 0);
}
