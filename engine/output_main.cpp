// sustain-output: the output stage of the relay layout. Plays the active worker's blocks
// on the playback ports (the only client in the mix). Started by sustaind only; two run,
// the second waiting to take over. See docs/failover.md.
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <memory>

#include "engine/process_setup.h"
#include "engine/rt/output_callback.h"
#include "shm/clock.h"
#include "shm/segment.h"
#include "shm/spsc_ring.h"
#include "sustain_version.h"

namespace sustain {
namespace {

struct OutputOptions : ChildOptions {
    std::string trace;  // diagnosis: append every cycle's decision to this file (every stage in a slot)
};

/// Runs the output stage's audio thread a few real-time priority steps above the workers'
/// (JACK gives every client the same): on a contended machine the stage that plays is then
/// the last to be late, and a worker that is late is covered by the other one anyway.
void raiseAudioPriority(const OutputContext& context) {
    constexpr int kStepsAboveWorkers = 5;
    if (!context.audioThread.known.load(std::memory_order_acquire)) return;
    int policy = 0;
    sched_param param{};
    if (pthread_getschedparam(context.audioThread.thread, &policy, &param) != 0) return;
    if (policy == SCHED_OTHER) {
        spdlog::warn("the audio thread runs without real-time priority: every other program can delay it. Run the "
                     "JACK server with real-time scheduling (jackd -R, the default; or PipeWire with RTKit) and an "
                     "rtprio limit for its user (docs/install.md)");
        return;
    }
    param.sched_priority = std::min(param.sched_priority + kStepsAboveWorkers, sched_get_priority_max(policy));
    if (const int error = pthread_setschedparam(context.audioThread.thread, policy, &param); error != 0)
        spdlog::warn("cannot raise the output stage's priority above the workers' ({}); allow it with an rtprio "
                     "limit (LimitRTPRIO=95, or /etc/security/limits.d/audio.conf; docs/install.md)",
                     std::strerror(error));
}

int runOutput(const OutputOptions& options) {
    const int signalFd = enterChildProcess(options.supervisorPid);
    if (signalFd < 0) return 1;
    MappedSegment mapping;
    std::string detail;
    const AttachError attached = attachSegment(options.instance, false, mapping, &detail);
    if (attached != AttachError::None || options.slot >= kOutputSlots) {
        spdlog::error("{}", attached != AttachError::None ? describe(attached, options.instance, detail)
                                                           : "--slot must be 0 or 1");
        return static_cast<int>(WorkerExit::AttachFailed);
    }
    Segment& segment = mapping.get();
    WorkerSlot& slot = segment.outputs[options.slot];
    lockMemory();

    auto context = std::make_unique<OutputContext>();
    context->segment = &segment;
    context->slot = options.slot;
    context->startEpoch = slot.epoch.load(std::memory_order_acquire);
    context->samplesPerNs = segment.config.sampleRate / 1e9;
    std::unique_ptr<OutputTrace> trace;
    FILE* traceFile = nullptr;
    if (!options.trace.empty()) {
        trace = std::make_unique<OutputTrace>();
        SpscRing<OutputTraceRecord>::initialize(trace->indices, kOutputTraceCapacity);
        traceFile = std::fopen(options.trace.c_str(), "a");
        if (traceFile != nullptr) context->trace = trace.get();
    }
    auto drainTrace = [&] {
        if (traceFile == nullptr) return;
        SpscRing<OutputTraceRecord> ring(trace->indices, trace->slots);
        OutputTraceRecord r;
        while (ring.tryPop(r))
            std::fprintf(traceFile, "%lu %lu %u %lu %lu %u %u %lu %lu\n", static_cast<unsigned long>(r.cycle),
                         static_cast<unsigned long>(r.number), r.source, static_cast<unsigned long>(r.activeLast),
                         static_cast<unsigned long>(r.standbyLast), r.activeSlot, r.lag,
                         static_cast<unsigned long>(r.startNs), static_cast<unsigned long>(r.blockStartNs));
    };
    const std::string clientName = "sustain-" + options.instance + "-out" + std::to_string(options.slot);
    const OpenedStream opened = openAndStartStream(segment.config, clientName, paOutputCallback, context.get(), 2, context->channels);
    if (opened.stream == nullptr) {
        slot.exitReason.store(static_cast<uint32_t>(opened.failure), std::memory_order_release);
        return static_cast<int>(opened.failure);
    }
    std::snprintf(slot.deviceName, sizeof slot.deviceName, "%s", opened.device.name.c_str());
    slot.startedNs.store(monotonicNs(), std::memory_order_release);
    if (!waitForFirstCallback(context->blocks)) {
        spdlog::error("the audio stream on {} started but its callback never ran", opened.device.name);
        closeStream(opened.stream);
        return static_cast<int>(WorkerExit::StreamFailed);
    }
    spdlog::info("output stage on {} ({} channels, output latency {} frames)", opened.device.name,
                 opened.device.channels, opened.outputLatencyFrames);
    // What the output stage plays was rendered one period earlier (the callback follows
    // when that changes, and publishes at once when this stage becomes the one that plays:
    // followRelayDelay). Only the playing stage publishes: a standby's figure would replace
    // the playing stage's.
    context->reportedLatencyFrames.store(opened.outputLatencyFrames, std::memory_order_relaxed);
    if (segment.output.writerSlot.load(std::memory_order_acquire) == options.slot)
        publishPlayLatency(segment, opened.outputLatencyFrames, segment.config.framesPerBuffer);
    jack_client_t* jackClock = nullptr;
    if (playsThroughJack(opened)) {
        jackClock = openJackClock("sustain-" + options.instance + "-outclock" + std::to_string(options.slot));
        context->jackClock.store(jackClock, std::memory_order_release);
    }
    raiseAudioPriority(*context);
    confineAudioThread(context->audioThread, options.slot, "output stage");
    const uint32_t peer = (options.slot + 1) % kOutputSlots;
    const std::string peerClient = "sustain-" + options.instance + "-out" + std::to_string(peer);

    pollfd fds[2] = {{options.wakeFd, POLLIN, 0}, {signalFd, POLLIN, 0}};
    uint64_t stopAfterNs = 0;
    for (;;) {
        slot.controlBeats.fetch_add(1, std::memory_order_release);
        drainTrace();
        if (jackClock != nullptr) lookUpPeerPorts(context->stale, segment.outputs[peer], jackClock, peerClient);
        // Active while it holds the writer role; warm while it waits to take over.
        const bool playing = segment.output.writerSlot.load(std::memory_order_acquire) == options.slot;
        auto expected = slot.state.load(std::memory_order_acquire);
        if (expected != static_cast<uint32_t>(WorkerState::Fenced))
            slot.state.compare_exchange_strong(
                expected, static_cast<uint32_t>(playing ? WorkerState::Active : WorkerState::Warm), std::memory_order_acq_rel);
        // On shutdown keep playing until the workers' fade-out has been played, then stop.
        if (stopAfterNs == 0 && segment.control.shutdownRequested.load(std::memory_order_acquire) != 0)
            stopAfterNs = monotonicNs() + 50'000'000ull;
        if (stopAfterNs != 0 && monotonicNs() > stopAfterNs) break;
        if (stopAfterNs == 0 && streamLost(opened.stream)) {
            drainTrace();
            exitDeviceLost(slot);
        }
        if (poll(fds, 2, stopAfterNs != 0 ? 5 : 50) <= 0) continue;
        if (fds[0].revents & (POLLIN | POLLHUP)) {
            char bytes[64];
            if (read(options.wakeFd, bytes, sizeof bytes) == 0) {
                spdlog::warn("sustaind closed the wake socket; stopping");
                break;
            }
        }
        if (fds[1].revents & POLLIN) {
            signalfd_siginfo info{};
            if (read(signalFd, &info, sizeof info) == sizeof info && info.ssi_signo != SIGPIPE) {
                context->stopRequested.store(1, std::memory_order_release);
                break;
            }
        }
    }
    closeStream(opened.stream);
    if (jackClock != nullptr) jack_client_close(jackClock);
    drainTrace();
    if (traceFile != nullptr) std::fclose(traceFile);
    slot.exitReason.store(static_cast<uint32_t>(WorkerExit::Clean), std::memory_order_release);
    return 0;
}

}  // namespace
}  // namespace sustain

int main(int argc, char** argv) {
    sustain::OutputOptions options;
    CLI::App app{"sustain-output: the output stage of sustaind's relay layout (started by sustaind only)"};
    app.set_version_flag("--version", std::string("sustain-output ") + SUSTAIN_VERSION);
    sustain::addChildOptions(app, options);
    app.add_option("--trace", options.trace, "diagnosis: write each cycle's decision to this file");
    CLI11_PARSE(app, argc, argv);
    if (options.trace.empty() && std::getenv("SUSTAIN_OUTPUT_TRACE") != nullptr)
        options.trace = std::string(std::getenv("SUSTAIN_OUTPUT_TRACE")) + "." + std::to_string(options.slot);
    sustain::setupChildLogging("output", options);
    return sustain::runOutput(options);
}
