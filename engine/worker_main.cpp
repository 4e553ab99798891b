// sustain-worker: renders the engine's sound in a PortAudio callback. Started by sustaind
// only (it passes the instance, the slot and one end of a socketpair); see docs/processes.md.
#include <pa_jack.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <thread>

#include "engine/audio_device.h"
#include "engine/control_thread.h"
#include "engine/process_setup.h"
#include "engine/rt/audio_callback.h"
#include "engine/rt/callback_timing.h"
#include "engine/rt/synth.h"
#include "shm/clock.h"
#include "shm/fault_point.h"
#include "shm/realtime.h"
#include "shm/segment.h"
#include "shm/seqlock.h"
#include "sustain_version.h"

namespace sustain {
namespace {

struct WorkerOptions : ChildOptions {
    uint32_t generation = 0;  // names the JACK client (workerClientName)
    bool prepared = false;    // started ahead: waits for sustaind to give it a slot
    bool listDevices = false;
    std::string device;
    double rate = 48000;
    unsigned frames = 64;
};

int exitWith(Segment* segment, uint32_t slot, WorkerExit reason) {
    if (segment != nullptr) segment->slots[slot].exitReason.store(static_cast<uint32_t>(reason), std::memory_order_release);
    return static_cast<int>(reason == WorkerExit::Clean ? 0 : static_cast<int>(reason));
}

const char* describe(RtEvent event) {
    switch (event) {
        case RtEvent::Xrun: return "xrun (output underflow), total";
        case RtEvent::Clipped: return "samples clipped at ±1 in one block:";
        case RtEvent::QueueBacklog: return "more commands than one block applies; carried over, taken:";
        case RtEvent::StaleEpoch: return "stale epoch; not rendering";
        case RtEvent::FadeDone: return "fade-out done";
    }
    return "event";
}

/// Formats what the callback reported, folding repeats ("xrun x37") to keep the log calm.
void drainRtLog(RtLogRing& log) {
    SpscRing<RtLogRecord> ring = log.ring();
    RtLogRecord record;
    static uint64_t lastNs[8] = {};
    static uint64_t folded[8] = {};
    while (ring.tryPop(record)) {
        const auto kind = static_cast<size_t>(record.event) & 7;
        if (lastNs[kind] != 0 && record.timeNs - lastNs[kind] < 1'000'000'000ull) {
            ++folded[kind];
            continue;
        }
        if (folded[kind] > 0)
            spdlog::warn("{} {} ({} similar suppressed)", describe(record.event), record.a, folded[kind]);
        else
            spdlog::warn("{} {}", describe(record.event), record.a);
        lastNs[kind] = record.timeNs;
        folded[kind] = 0;
    }
}

/// A worker is `active` once its callback runs in the active role; a standby is `warm` only
/// once it renders in step: kWarmBlocks (engine/rt/callback_timing.h) blocks in a row
/// started from the active's state.

void updateState(WorkerSlot& slot, bool active) {
    const auto state = static_cast<WorkerState>(slot.state.load(std::memory_order_acquire));
    if (state == WorkerState::Fenced || state == WorkerState::Dead) return;
    WorkerState next = state;
    if (active) {
        next = WorkerState::Active;
    } else if (slot.activeStall.load(std::memory_order_relaxed) > 2) {
        next = WorkerState::Starting;  // not in step while the active does not advance
    } else if (slot.syncedBlocks.load(std::memory_order_relaxed) >= kWarmBlocks) {
        next = WorkerState::Warm;
    }
    // A compare-exchange: sustaind may fence this slot at the same moment, and a fenced
    // worker must stay fenced.
    auto expected = static_cast<uint32_t>(state);
    if (next != state) slot.state.compare_exchange_strong(expected, static_cast<uint32_t>(next), std::memory_order_acq_rel);
}

/// An exclusive-device standby: attached, shadowing the commands (the forwarder keeps the
/// newest per parameter once the callback's queue is full), reporting `warm`, with no
/// stream. Returns true when promoted, false on shutdown, a signal or sustaind's death.
bool waitForPromotion(Segment& segment, const WorkerOptions& options, CommandForwarder& forwarder, RtLogRing& log,
                      int signalFd) {
    WorkerSlot& slot = segment.slots[options.slot];
    auto expected = static_cast<uint32_t>(WorkerState::Starting);
    slot.state.compare_exchange_strong(expected, static_cast<uint32_t>(WorkerState::Warm), std::memory_order_acq_rel);
    spdlog::info("standby without a stream: the device is exclusive, it is opened on promotion");
    pollfd fds[2] = {{options.wakeFd, POLLIN, 0}, {signalFd, POLLIN, 0}};
    for (;;) {
        slot.controlBeats.fetch_add(1, std::memory_order_release);
        forwarder.drainOnce();
        drainRtLog(log);
        if (slot.role.load(std::memory_order_acquire) == static_cast<uint32_t>(WorkerRole::Active)) return true;
        if (segment.control.shutdownRequested.load(std::memory_order_acquire) != 0) return false;
        if (poll(fds, 2, 1) <= 0) continue;
        if (fds[0].revents & (POLLIN | POLLHUP)) {
            char bytes[64];
            if (read(options.wakeFd, bytes, sizeof bytes) == 0) return false;
        }
        if (fds[1].revents & POLLIN) return false;
    }
}

/// A prepared worker waits here, with everything done that does not touch a slot, until
/// sustaind gives it one: a byte on the wake socket, the slot's number. False on EOF
/// (sustaind closed it), a signal, or a byte that names no slot.
bool waitForSlot(WorkerOptions& options, int signalFd) {
    pollfd fds[2] = {{options.wakeFd, POLLIN, 0}, {signalFd, POLLIN, 0}};
    for (;;) {
        if (poll(fds, 2, -1) <= 0) continue;
        if (fds[1].revents & POLLIN) return false;
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) {
            unsigned char slot = 0;
            if (read(options.wakeFd, &slot, 1) != 1 || slot >= kWorkerSlots) return false;
            options.slot = slot;
            return true;
        }
    }
}

int listDevices(const WorkerOptions& options) {
    quietAlsaErrors();
    if (Pa_Initialize() != paNoError) {
        std::fprintf(stderr, "PortAudio failed to initialise\n");
        return 3;
    }
    printOutputDevices();
    const DeviceChoice choice = chooseOutputDevice(options.device);
    const std::string problem = probeOutputDevice(choice, options.rate, options.frames);
    Pa_Terminate();
    if (!problem.empty()) {
        std::printf("no usable output device: %s\n", problem.c_str());
        return 3;
    }
    std::printf("usable: %s\n", choice.name.c_str());
    return 0;
}

int runWorker(WorkerOptions& options) {
    const int signalFd = enterChildProcess(options.supervisorPid);
    if (signalFd < 0) return 1;

    MappedSegment mapping;
    std::string detail;
    const AttachError attached = attachSegment(options.instance, false, mapping, &detail);
    if (attached != AttachError::None) {
        spdlog::error("{}", sustain::describe(attached, options.instance, detail));
        return exitWith(nullptr, options.slot, WorkerExit::AttachFailed);
    }
    Segment& segment = mapping.get();
    const EngineConfig& config = segment.config;
    lockMemory();
    if (options.prepared) {
        // Started ahead, while the slot it will fill still has its process: nothing here
        // writes the segment (a slot has one writer at a time). PortAudio is initialised only
        // after the go, as by any worker: it activates its JACK client as it initialises, a
        // client JACK would run in every cycle while this process waits.
        spdlog::debug("prepared: waiting for a slot");
        if (!waitForSlot(options, signalFd)) return 0;
        setupChildLogging("worker", options);
    }
    if (options.slot >= kWorkerSlots) {
        spdlog::error("--slot {} does not exist (0..{})", options.slot, kWorkerSlots - 1);
        return exitWith(nullptr, options.slot, WorkerExit::AttachFailed);
    }
    WorkerSlot& slot = segment.slots[options.slot];

    auto queue = std::make_unique<CallbackQueue>(kCallbackQueueCapacity);
    auto log = std::make_unique<RtLogRing>();
    auto context = std::make_unique<CallbackContext>();
    context->segment = &segment;
    context->slot = options.slot;
    context->voices = config.voices;
    context->rampSamples = config.rampSamples;
    context->fadeSamples = config.fadeSamples;
    context->sampleRate = config.sampleRate;
    context->samplesPerNs = config.sampleRate / 1e9;
    context->relay = config.layout == static_cast<uint32_t>(OutputLayout::Relay);
    context->periodFrames = config.framesPerBuffer;
    context->queue = queue.get();
    context->log = log.get();
    context->startEpoch = slot.epoch.load(std::memory_order_acquire);
    initialRenderState(context->state, 0.0);
    CommandForwarder forwarder(segment, options.slot, *queue, context->renderedThrough);
    SUSTAIN_FAULT_POINT(FaultPoint::ReplacementAttach);
    const auto snapshot = loadStateTable(segment, context->state);
    forwarder.setSnapshot(snapshot);
    for (uint32_t p = 0; p < kParamCount; ++p) context->state.appliedSequence[p] = snapshot[p];
    SUSTAIN_FAULT_POINT(FaultPoint::ReplacementAttach);

    if (!context->relay && config.exclusiveDevice != 0 &&
        slot.role.load(std::memory_order_acquire) == static_cast<uint32_t>(WorkerRole::Standby)) {
        // The device belongs to one process at a time: wait, warm but without a stream,
        // until promoted, then continue from the failed active's last published state.
        if (!waitForPromotion(segment, options, forwarder, *log, signalFd)) {
            slot.exitReason.store(static_cast<uint32_t>(WorkerExit::Clean), std::memory_order_release);
            return 0;
        }
        const uint32_t other = (options.slot + 1) % kWorkerSlots;
        PublishedRender last;
        if (seqlockRead(segment.state[other].sequence, segment.state[other].words, last) && last.state.blocks > 0) {
            context->state = last.state;
            spdlog::info("continuing from the failed worker's last block ({})", last.state.blocks);
        }
    }
    context->resumeFrameNumbering =
        slot.role.load(std::memory_order_acquire) == static_cast<uint32_t>(WorkerRole::Active);
    const uint64_t openingNs = monotonicNs();
    const std::string clientName = workerClientName(options.instance, options.generation);
    OpenedStream opened = openAndStartStream(config, clientName, paAudioCallback, context.get(), 2, context->channels);
    // An exclusive device may still be held for a moment by the process it was taken from.
    for (int attempt = 0; config.exclusiveDevice != 0 && opened.stream == nullptr &&
                          opened.failure == WorkerExit::StreamFailed && attempt < 20; ++attempt) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        opened = openAndStartStream(config, clientName, paAudioCallback, context.get(), 2, context->channels);
    }
    if (config.exclusiveDevice != 0 && opened.stream != nullptr)
        spdlog::info("opened the device in {:.1f} ms", (monotonicNs() - openingNs) / 1e6);
    if (opened.stream == nullptr) return exitWith(&segment, options.slot, opened.failure);
    std::snprintf(slot.deviceName, sizeof slot.deviceName, "%s", opened.device.name.c_str());
    slot.startedNs.store(monotonicNs(), std::memory_order_release);
    if (!waitForFirstCallback(context->blocks)) {
        spdlog::error("the audio stream on {} started but its callback never ran", opened.device.name);
        closeStream(opened.stream);
        return exitWith(&segment, options.slot, WorkerExit::StreamFailed);
    }
    spdlog::info("rendering on {} ({} Hz, {} frames, {} voices, {} layout, output latency {} frames)",
                 opened.device.name, config.sampleRate, config.framesPerBuffer, config.voices,
                 context->relay ? "relay" : "direct", opened.outputLatencyFrames);
    confineAudioThread(context->audioThread, options.slot, "worker");
    if (!context->relay && slot.role.load(std::memory_order_acquire) == static_cast<uint32_t>(WorkerRole::Active))
        publishPlayLatency(segment, opened.outputLatencyFrames, 0);
    jack_client_t* jackClock = nullptr;
    if (playsThroughJack(opened)) {
        jackClock = openJackClock("sustain-" + options.instance + "-clock" + std::to_string(options.slot));
        if (jackClock != nullptr) {
            context->jackPeriodFrames = jack_get_buffer_size(jackClock);
            context->jackMinusMonotonicNs.store(jackMinusMonotonicNs(), std::memory_order_relaxed);
            context->jackClock.store(jackClock, std::memory_order_release);
        }
    }
    uint64_t jackOffsetRefreshNs = monotonicNs();

    pthread_setname_np(pthread_self(), "sustain-control");
    requestLowRealtimePriority("control thread");
    pollfd fds[2] = {{options.wakeFd, POLLIN, 0}, {signalFd, POLLIN, 0}};
    // A third of a period: commands that arrive during a nap still reach the next callback
    // unless they arrive in its last third.
    const uint64_t napNs = 1'000'000'000ull * segment.config.framesPerBuffer / std::max(segment.config.sampleRate, 1u) / 3;
    bool stopping = false;
    uint64_t stopDeadline = 0;
    const WorkerSlot& peer = segment.slots[(options.slot + 1) % kWorkerSlots];
    for (;;) {
        slot.controlBeats.fetch_add(1, std::memory_order_release);
        // Direct layout: the other worker's ports, to cancel its stale buffer should it die
        // while it plays. sustaind stores a process's client generation before its pid.
        if (jackClock != nullptr && !context->relay &&
            peer.pid.load(std::memory_order_acquire) != context->stale.peerPortsPid.load(std::memory_order_relaxed))
            lookUpPeerPorts(context->stale, peer, jackClock,
                            workerClientName(options.instance, peer.clientGeneration.load(std::memory_order_acquire)));
        const bool active = slot.role.load(std::memory_order_acquire) == static_cast<uint32_t>(WorkerRole::Active);
        updateState(slot, active);
        const bool pending = forwarder.drainOnce();
        if (active) segment.control.drainHeartbeatNs.store(monotonicNs(), std::memory_order_release);
        drainRtLog(*log);
        if (jackClock != nullptr && monotonicNs() - jackOffsetRefreshNs > 1'000'000'000ull) {
            // The two clocks are slewed apart by NTP (parts per million): follow them.
            context->jackMinusMonotonicNs.store(jackMinusMonotonicNs(), std::memory_order_relaxed);
            jackOffsetRefreshNs = monotonicNs();
        }
        if (!stopping && segment.control.shutdownRequested.load(std::memory_order_acquire) != 0) {
            stopping = true;
            stopDeadline = monotonicNs() + 500'000'000ull;
        }
        if (stopping && (slot.fadedOut.load(std::memory_order_acquire) != 0 || monotonicNs() > stopDeadline)) break;
        if (!stopping && streamLost(opened.stream)) exitDeviceLost(slot);
        const bool warming = slot.state.load(std::memory_order_relaxed) == static_cast<uint32_t>(WorkerState::Starting);
        if (warming) SUSTAIN_FAULT_POINT(FaultPoint::ReplacementAttach);
        // Held timed commands set how long it may sleep: they must reach the callback in time.
        const int timedMs = forwarder.msUntilNextTimed(50);
        // Commands keep coming (this pass took some): nap for a fraction of a period without
        // announcing sleep, so that the OSC thread writes no wake byte and what arrives
        // meanwhile is taken in one pass. The callback takes commands once a period anyway;
        // a wake per receive batch would cost two context switches per few messages.
        const bool napping = forwarder.lastTaken() > 0 && !pending && !stopping && !warming && timedMs > 0;
        if (!napping && !pending && !stopping && !warming && timedMs > 0 && !forwarder.ring().prepareToSleep()) continue;
        const uint64_t waitNs = napping ? napNs
                                : pending || stopping || warming ? 1'000'000ull
                                                                 : static_cast<uint64_t>(std::max(timedMs, 1)) * 1'000'000ull;
        const timespec wait{0, static_cast<long>(waitNs)};
        const int ready = ppoll(fds, 2, &wait, nullptr);
        forwarder.ring().wokeUp();
        if (ready <= 0) continue;
        if (fds[0].revents & (POLLIN | POLLHUP)) {
            char bytes[64];
            const ssize_t got = read(options.wakeFd, bytes, sizeof bytes);
            if (got == 0) {
                spdlog::warn("sustaind closed the wake socket; stopping");
                break;
            }
        }
        if (fds[1].revents & POLLIN) {
            signalfd_siginfo info{};
            if (read(signalFd, &info, sizeof info) == sizeof info && info.ssi_signo != SIGPIPE) {
                // The callback fades out, as on a shutdown of the whole engine.
                spdlog::info("signal {}: fading out and stopping", info.ssi_signo);
                context->stopRequested.store(1, std::memory_order_release);
                stopping = true;
                stopDeadline = monotonicNs() + 500'000'000ull;
            }
        }
    }
    closeStream(opened.stream);
    if (jackClock != nullptr) jack_client_close(jackClock);
    spdlog::info("stopped after {} blocks", context->blocks.load());
    return exitWith(&segment, options.slot, WorkerExit::Clean);
}

}  // namespace
}  // namespace sustain

int main(int argc, char** argv) {
    sustain::WorkerOptions options;
    CLI::App app{"sustain-worker: renders audio for sustaind (started by sustaind only)"};
    app.set_version_flag("--version", std::string("sustain-worker ") + SUSTAIN_VERSION);
    sustain::addChildOptions(app, options);
    app.add_option("--generation", options.generation, "the engine's count of this worker process (names its JACK client)");
    app.add_flag("--prepared", options.prepared,
                 "start ahead: initialise, then wait for sustaind to send the slot to fill on the wake socket");
    app.add_flag("--list-devices", options.listDevices, "list output devices and check the automatic choice plays");
    app.add_option("--device", options.device, "with --list-devices: the device to check");
    app.add_option("--rate", options.rate, "with --list-devices: sample rate to check");
    app.add_option("--frames", options.frames, "with --list-devices: period to check");
    CLI11_PARSE(app, argc, argv);
    if (options.listDevices) return sustain::listDevices(options);
    sustain::setupChildLogging(options.prepared ? "prepared worker" : "worker", options, !options.prepared);
    return sustain::runWorker(options);
}
