// Render hosts (docs/hosts.md): labels carried in audio, rendering by block number, the
// verdicts on a render host, the link's framing.
#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "hosts/block_label.h"
#include "hosts/host_health.h"
#include "hosts/link_protocol.h"
#include "hosts/netjack_ports.h"
#include "hosts/render_callback.h"
#include "hosts/tagged_render.h"

using namespace sustain;

TEST_CASE("a label survives the trip as floats and nothing else is taken for one") {
    float samples[64];
    BlockLabel label;
    label.tag = (uint64_t{1} << 40) + 12345;
    label.lastSequence = 987654321;
    label.snapshot = 7;
    label.inStep = true;
    writeLabel(samples, 64, label);
    BlockLabel read;
    REQUIRE(readLabel(samples, 64, read));
    CHECK(read.tag == label.tag);
    CHECK(read.lastSequence == label.lastSequence);
    CHECK(read.snapshot == 7);
    CHECK(read.inStep);

    samples[3] += 1.0f;  // one piece changed: the checksum says so
    CHECK_FALSE(readLabel(samples, 64, read));
    std::memset(samples, 0, sizeof samples);  // silence (a slave gone)
    CHECK_FALSE(readLabel(samples, 64, read));
    for (int i = 0; i < 64; ++i) samples[i] = 0.5f;  // sound
    CHECK_FALSE(readLabel(samples, 64, read));
    CHECK_FALSE(readLabel(samples, 8, read));  // a period too short for a label

    RenderRequest request{4242};
    writeRequest(samples, 64, request);
    RenderRequest back;
    REQUIRE(readRequest(samples, 64, back));
    CHECK(back.tag == 4242);
    CHECK_FALSE(readLabel(samples, 64, read));  // a request is not a label
}

namespace {
TaggedRenderer makeRenderer(uint64_t firstTag) {
    TaggedRenderer renderer;
    TaggedRenderConfig config;
    config.voices = 2;
    config.rampSamples = 100;
    renderer.configure(config);
    RenderState state;
    initialRenderState(state, 0.5);
    state.blocks = firstTag;
    renderer.reset(state);
    return renderer;
}
TaggedCommand change(uint64_t tag, uint32_t offset, uint16_t param, double value, uint64_t sequence) {
    TaggedCommand command{};
    command.tag = tag;
    command.offset = offset;
    command.param = param;
    command.value = value;
    command.sequence = sequence;
    return command;
}
/// What a render host's link thread does with a snapshot: hands it to the callback.
void giveSnapshot(RenderHostContext& context, uint32_t generation, uint64_t nextBlock) {
    RenderSnapshot snapshot{};
    snapshot.generation = generation;
    snapshot.rampSamples = 32;
    initialRenderState(snapshot.state, 0.5);
    snapshot.state.blocks = nextBlock;
    seqlockWrite(context.snapshotSequence, context.snapshotWords, snapshot);
    context.snapshotGeneration.store(generation);
    context.linkUp.store(1);
}
}  // namespace

TEST_CASE("two renderers given the same state and commands render the same samples, whenever they join") {
    TaggedRenderer first = makeRenderer(100);
    std::vector<float> a(64), b(64);
    first.add(change(103, 10, voiceFreqParam(0), 660.0, 1));
    first.add(change(105, 0, kParamMasterGain, 0.25, 2));
    for (int i = 0; i < 3; ++i) first.render(a.data(), 1, 64);
    // A second host joins from a snapshot after block 102, with the commands still waiting.
    TaggedRenderer second = makeRenderer(0);
    second.reset(first.state());
    for (uint32_t i = 0; i < first.pendingCount(); ++i) second.add(first.pendingAt(i));
    for (int block = 0; block < 20; ++block) {
        CHECK(first.nextTag() == second.nextTag());
        first.render(a.data(), 1, 64);
        second.render(b.data(), 1, 64);
        CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    }
    CHECK(first.state().voices[0].freq.current == 660.0);
    CHECK(first.lastSequence() == 2);
}

TEST_CASE("a command applies at its frame, a late one is refused, newest wins at one frame") {
    TaggedRenderer renderer = makeRenderer(10);
    CHECK(renderer.add(change(11, 5, kParamMasterGain, 0.0, 3)) == TaggedRenderer::AddResult::Added);
    CHECK(renderer.add(change(11, 5, kParamMasterGain, 1.0, 2)) == TaggedRenderer::AddResult::Coalesced);  // older
    CHECK(renderer.pendingAt(0).value == 0.0);
    CHECK(renderer.add(change(11, 5, kParamMasterGain, 0.1, 4)) == TaggedRenderer::AddResult::Coalesced);  // newer
    CHECK(renderer.pendingAt(0).value == 0.1);
    std::vector<float> out(64);
    renderer.render(out.data(), 1, 64);  // block 10: untouched
    CHECK(renderer.state().master.target == 0.5);
    CHECK(renderer.add(change(10, 0, kParamMasterGain, 0.9, 5)) == TaggedRenderer::AddResult::Late);
    renderer.render(out.data(), 1, 64);  // block 11: the ramp starts at frame 5
    CHECK(renderer.state().master.target == doctest::Approx(0.1));
    CHECK(renderer.state().master.remaining == 100 - (64 - 5));
}

TEST_CASE("a render host renders what is asked, catches up, and says when it is not in step") {
    auto context = std::make_unique<RenderHostContext>();
    TaggedCommandQueue queue(64);
    context->queue = &queue;
    context->voices = 2;
    float request[64], audio[64], label[64];
    BlockLabel read;
    writeRequest(request, 64, RenderRequest{50});
    renderRequestedBlock(*context, request, audio, label, 64);
    CHECK_FALSE(readLabel(label, 64, read));  // no snapshot yet: nothing offered

    giveSnapshot(*context, 1, 45);
    renderRequestedBlock(*context, request, audio, label, 64);
    REQUIRE(readLabel(label, 64, read));
    CHECK(read.tag == 50);
    CHECK(read.inStep);
    CHECK(context->catchUpBlocks.load() == 5);

    writeRequest(request, 64, RenderRequest{51 + kMaxCatchUpBlocks + 1});  // behind: catches up, offers nothing yet
    renderRequestedBlock(*context, request, audio, label, 64);
    CHECK_FALSE(readLabel(label, 64, read));
    writeRequest(request, 64, RenderRequest{51 + kMaxCatchUpBlocks + 2});
    renderRequestedBlock(*context, request, audio, label, 64);
    REQUIRE(readLabel(label, 64, read));
    CHECK(read.inStep);
    CHECK(context->catchUpBlocks.load() == 5 + kMaxCatchUpBlocks + 2);

    queue.enqueue(QueuedTaggedCommand{change(40, 0, kParamMasterGain, 0.0, 9), 1, 0});  // its block is gone
    writeRequest(request, 64, RenderRequest{51 + kMaxCatchUpBlocks + 3});
    renderRequestedBlock(*context, request, audio, label, 64);
    REQUIRE(readLabel(label, 64, read));
    CHECK_FALSE(read.inStep);
    CHECK(context->lateCommands.load() == 1);
    CHECK(context->resyncWanted.load() == 1);

    writeRequest(request, 64, RenderRequest{100 + kMaxBehindBlocks + 10});  // too far to catch up
    giveSnapshot(*context, 2, 100);
    renderRequestedBlock(*context, request, audio, label, 64);
    REQUIRE(readLabel(label, 64, read));
    CHECK_FALSE(read.inStep);
}

TEST_CASE("a render host sends again the blocks before, and those a skipped cycle never asked for") {
    auto context = std::make_unique<RenderHostContext>();
    TaggedCommandQueue queue(64);
    context->queue = &queue;
    context->voices = 1;
    context->outputChannels = kNetjackReturnChannels;
    giveSnapshot(*context, 1, 10);
    constexpr uint32_t kFrames = 32;
    float request[kFrames];
    float out[kFrames * kNetjackReturnChannels];
    auto labelOn = [&](uint32_t channel) {  // channel counts from 1, as JACK's port names do
        float samples[kFrames];
        for (uint32_t i = 0; i < kFrames; ++i) samples[i] = out[i * kNetjackReturnChannels + channel - 1];
        BlockLabel label;
        return readLabel(samples, kFrames, label) ? static_cast<int64_t>(label.tag) : -1;
    };
    writeRequest(request, kFrames, RenderRequest{10});
    paRenderHostCallback(request, out, kFrames, nullptr, 0, context.get());
    CHECK(labelOn(netjackLabelChannel(0)) == 10);
    writeRequest(request, kFrames, RenderRequest{12});  // the audio host's driver skipped a cycle: 11 was never asked for
    paRenderHostCallback(request, out, kFrames, nullptr, 0, context.get());
    CHECK(labelOn(netjackLabelChannel(0)) == 12);
    CHECK(labelOn(netjackLabelChannel(1)) == 11);  // rendered to catch up, sent now
    CHECK(labelOn(netjackLabelChannel(2)) == 10);
}

TEST_CASE("a render host is down after kHostDownCycles played without its block, warm after kHostWarmBlocks") {
    HostObservation seen;
    seen.state = HostState::Joining;
    seen.connected = true;
    seen.missingRun = 5000;  // from before it joined
    CHECK(judgeHost(seen) == HostState::Joining);  // nothing delivered yet
    seen.deliveredSinceJoin = kHostWarmBlocks - 1;
    seen.inStepRun = 100;  // a run from an earlier link does not make it warm
    CHECK(judgeHost(seen) == HostState::Joining);
    seen.deliveredSinceJoin = kHostWarmBlocks;
    seen.missingRun = 0;
    CHECK(judgeHost(seen) == HostState::InStep);
    seen.state = HostState::InStep;
    seen.missingRun = kHostDownCycles;
    CHECK(judgeHost(seen) == HostState::InStep);
    seen.missingRun += 1;
    CHECK(judgeHost(seen) == HostState::Down);
    seen.state = HostState::Down;
    seen.missingRun = 0;
    seen.inStepRun = 0;  // back, re-syncing: its blocks say not in step
    CHECK(judgeHost(seen) == HostState::Joining);
    seen.state = HostState::Joining;
    seen.inStepRun = kHostWarmBlocks;
    CHECK(judgeHost(seen) == HostState::InStep);  // a standby again only once warm
    seen.connected = false;
    CHECK(judgeHost(seen) == HostState::Down);

    HostState states[kRenderHostSlots] = {HostState::Down, HostState::InStep};
    CHECK(choosePreferred(0, states) == 1);
    states[0] = HostState::InStep;
    CHECK(choosePreferred(1, states) == 1);  // the one playing stays
    states[1] = HostState::Joining;
    CHECK(choosePreferred(1, states) == 0);
}

TEST_CASE("the link splits messages at their boundaries and refuses a foreign stream") {
    std::vector<uint8_t> stream;
    HelloPayload hello{};
    std::snprintf(hello.netName, sizeof hello.netName, "r0");
    appendLinkMessage(stream, LinkType::Hello, &hello, sizeof hello);
    appendLinkMessage(stream, LinkType::ResyncRequest, nullptr, 0);
    std::vector<uint8_t> buffer(stream.begin(), stream.begin() + 20);  // part of the first
    int seen = 0;
    auto count = [&](LinkType, const uint8_t*, uint32_t) { ++seen; };
    CHECK(takeLinkMessages(buffer, count));
    CHECK(seen == 0);
    buffer.insert(buffer.end(), stream.begin() + 20, stream.end());
    CHECK(takeLinkMessages(buffer, count));
    CHECK(seen == 2);
    CHECK(buffer.empty());
    std::vector<uint8_t> foreign = {'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P', '/', '1', '.', '1'};
    CHECK_FALSE(takeLinkMessages(foreign, count));
    CHECK(validNetName("render-a.1"));
    CHECK_FALSE(validNetName("../etc"));
    CHECK_FALSE(validNetName("a:b"));
    CHECK_FALSE(validNetName(""));
}
